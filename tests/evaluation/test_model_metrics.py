"""clap, fad and lyrics_wer load real transformers checkpoints: tiny random-weight ones saved locally."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.random_models import save_random_clap, save_random_whisper
from tests.evaluation.synth import RATE, melody
from yue_train.evaluation.metrics import MetricError, SongAudio, build_metric

pytestmark = pytest.mark.slow  # builds and loads transformers models


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    return save_random_clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return save_random_whisper(tmp_path_factory.mktemp("whisper"))


def song(wave: np.ndarray, **kw) -> SongAudio:
    return SongAudio(id=kw.pop("id", "s"), sample_rate=RATE, mix=wave, vocal=wave, **kw)


def tones(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return melody([(float(m), seconds / 4) for m in rng.integers(48, 72, 4)])


def test_clap_score_is_a_deterministic_cosine(clap_dir):
    metric = build_metric("clap", model=str(clap_dir))
    s = song(tones(5.0, 0), genres="pop female vocal")
    first, second = metric.score(s).values["score"], metric.score(s).values["score"]
    assert -1.0 <= first <= 1.0 and first == second
    assert metric.score(song(tones(5.0, 0), genres="")).values == {}


def test_clap_cuts_a_song_into_extractor_length_windows(clap_dir):
    embedder = build_metric("fad", model=str(clap_dir)).embedder
    # 2 s windows: 5.5 s -> 2 + 2 + 1.5; 4.5 s -> 2 + 2 (the 0.5 s tail is dropped)
    assert embedder.audio(tones(5.5, 0), RATE).shape == (3, 8)
    assert embedder.audio(tones(4.5, 0), RATE).shape == (2, 8)
    assert embedder.audio(tones(0.5, 0), RATE).shape == (1, 8)


def test_fad_is_zero_against_itself_and_positive_against_other_audio(clap_dir):
    metric = build_metric("fad", model=str(clap_dir))
    generated = [song(tones(4.0, seed), id=str(seed)) for seed in range(3)]
    noise = [song((0.1 * np.random.default_rng(s).standard_normal(4 * RATE)).astype(np.float32)) for s in range(3)]
    same = metric.score_set(generated, generated)
    assert same["fad"] == pytest.approx(0.0, abs=1e-6) and same["windows"] == 6
    assert metric.score_set(generated, noise)["fad"] > 1e-3
    with pytest.raises(MetricError, match="fad needs a reference set"):
        metric.score_set(generated, None)


def test_lyrics_wer_transcribes_and_scores(whisper_dir):
    metric = build_metric("lyrics_wer", model=str(whisper_dir), max_new_tokens=8)
    result = metric.score(song(tones(3.0, 1), lyrics="[verse]\nhello there world"))
    assert set(result.values) == {"wer", "cer"} and result.values["wer"] >= 0
    assert isinstance(result.artifacts["transcript"], str)
    assert metric.score(song(tones(1.0, 1), lyrics="[instrumental]")).values == {}


def test_lyrics_per_scores_phonemes_with_the_same_whisper(whisper_dir):
    per = build_metric("lyrics_per", model=str(whisper_dir), max_new_tokens=8)
    assert per.asr is build_metric("lyrics_wer", model=str(whisper_dir)).asr  # Whisper loads once
    result = per.score(song(tones(3.0, 1), lyrics="[verse]\nhello there world"))
    assert set(result.values) == {"per"} and result.values["per"] >= 0
    assert isinstance(result.artifacts["transcript"], str)


def test_lyrics_wer_windows_long_vocals(whisper_dir):
    asr = build_metric("lyrics_wer", model=str(whisper_dir), max_new_tokens=4).asr
    calls = []
    generate = asr.model.generate
    asr.model.generate = lambda feats, **kw: calls.append(feats.shape) or generate(feats, **kw)
    asr.transcribe(np.zeros(int(65 * RATE), dtype=np.float32), RATE, 4)
    assert len(calls) == 3  # 30 + 30 + 5 s


@pytest.mark.parametrize("name", ["clap", "fad", "lyrics_wer", "lyrics_per"])
def test_missing_weights_are_a_one_line_error_saying_how_to_get_them(name, tmp_path):
    cases = [
        (str(tmp_path / "weights"), f"not found at {tmp_path / 'weights'}; get them with `huggingface-cli download"),
        ("nobody/no-such-model", "nobody/no-such-model are not in the local Hugging Face cache"),
        (None, "set the metric's option model to a local folder or hub id"),
    ]
    for model, fragment in cases:
        with pytest.raises(MetricError) as info:
            build_metric(name, model=model)
        assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_folder_without_weights_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MetricError, match="cannot be loaded") as info:
        build_metric("clap", model=str(tmp_path))
    assert "\n" not in str(info.value)
