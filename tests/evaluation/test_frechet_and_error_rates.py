"""The math of FAD (Fréchet distance) and of lyrics WER/CER, on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from yue_train.evaluation.metrics.frechet import frechet_between, frechet_distance, gaussian
from yue_train.evaluation.metrics.lyrics import edit_distance, error_rates, normalize_text


def embeddings(n: int = 400, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)


def test_fad_of_a_set_against_itself_is_zero():
    x = embeddings()
    assert frechet_between(x, x) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("size", [0.1, 1.0, 3.0])
def test_fad_of_a_shifted_set_is_the_squared_shift(size):
    x = embeddings()
    shift = size * np.arange(1, 9) / np.linalg.norm(np.arange(1, 9))
    assert frechet_between(x, x + shift) == pytest.approx(size**2, rel=1e-6)


def test_fad_grows_with_the_shift():
    x = embeddings()
    distances = [frechet_between(x, x + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[0] < 1e-8 < distances[1]


def test_fad_of_a_scaled_set_has_the_closed_form():
    # Σ2 = 4 Σ1 and μ2 = 2 μ1: tr(Σ1) + 4 tr(Σ1) − 2·2 tr(Σ1) + ‖μ1‖² = tr(Σ1) + ‖μ1‖²
    x = embeddings()
    mu, cov = gaussian(x)
    assert frechet_between(x, 2 * x) == pytest.approx(np.trace(cov) + mu @ mu, rel=1e-6)


def test_fad_with_fewer_embeddings_than_dimensions_is_finite():
    x = embeddings(n=5, d=32)
    assert frechet_between(x, x) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(frechet_between(x, embeddings(n=6, d=32, seed=1)))


def test_one_dimensional_gaussians_have_the_textbook_distance():
    # N(0, 1) vs N(3, 4): 3² + (1 − 2)² = 10
    assert frechet_distance(np.zeros(1), np.eye(1), np.array([3.0]), 4 * np.eye(1)) == pytest.approx(10.0)


def test_gaussian_needs_two_embeddings():
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        gaussian(np.zeros((1, 4)))


def test_wer_of_identical_texts_is_zero():
    assert error_rates("the quick brown fox", "the quick brown fox") == {"wer": 0.0, "cer": 0.0}


@pytest.mark.parametrize(
    ("hypothesis", "wer"),
    [
        ("the quick brown cat", 1 / 4),  # one substitution
        ("the quick brown fox jumps", 1 / 4),  # one insertion
        ("the brown fox", 1 / 4),  # one deletion
        ("a slow brown dog", 3 / 4),
        ("", 1.0),
        ("the the quick brown fox fox", 2 / 4),  # two insertions
        ("one two three four five six", 6 / 4),  # four substitutions, two insertions: above 1
    ],
)
def test_wer_counts_substitutions_insertions_and_deletions(hypothesis, wer):
    assert error_rates("the quick brown fox", hypothesis)["wer"] == pytest.approx(wer)


def test_cer_counts_characters_without_spaces():
    # "abcd" vs "abxd": 1 substitution in 4 characters, whatever the spacing
    assert error_rates("ab cd", "a bxd") == {"wer": 1.0, "cer": 0.25}
    assert error_rates("我爱你", "我恨你")["cer"] == pytest.approx(1 / 3)


def test_normalisation_drops_section_labels_case_and_punctuation():
    lyrics = "[verse]\nHello, World!\n(ooh) Don't stop\n\n[chorus]\nHey"
    assert normalize_text(lyrics) == "hello world don't stop hey"
    assert error_rates(lyrics, "hello world, don't STOP. hey")["wer"] == 0.0


def test_no_lyrics_no_rates():
    assert error_rates("[intro]\n", "la la") == {}


def test_edit_distance_known_values():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a"], []) == 1
