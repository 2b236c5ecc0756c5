"""voice_similarity with Resemblyzer's shipped weights on two synthetic 'voices' (source-filter vowels)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.evaluation.synth import RATE, voice
from yue_train.evaluation.metrics import MetricError, SongAudio, build_metric

pytestmark = pytest.mark.slow  # loads torch and librosa, embeds a few seconds of audio

# a low voice with a long vocal tract and a dark timbre, and a high bright one with formants 30% higher;
# each sings two different vowel sequences and melodies
LOW = {"formant_scale": 1.0, "tilt": 1.3}
HIGH = {"formant_scale": 1.3, "tilt": 0.7}


def take(kind: dict, take_number: int) -> np.ndarray:
    base = 48 if kind is LOW else 60
    if take_number == 1:
        return voice("aeiouaoeiu", base, [0, 2, 4, 5, 7], **kind)
    return voice("ouieaiuoae", base + 2, [0, 3, 5, 7, 3], **kind)


@pytest.fixture(scope="module")
def metric(tmp_path_factory):
    target = tmp_path_factory.mktemp("voice") / "target.wav"
    soundfile.write(target, take(LOW, 1), RATE)
    return build_metric("voice_similarity", target=str(target))


def similarity(metric, wave: np.ndarray, rate: int = RATE) -> float:
    return metric.score(SongAudio(id="s", sample_rate=rate, mix=np.zeros_like(wave), vocal=wave)).values["similarity"]


def test_another_take_of_the_same_voice_is_more_similar_than_a_different_voice(metric):
    same = similarity(metric, take(LOW, 2))
    other = [similarity(metric, take(HIGH, n)) for n in (1, 2)]
    assert same > max(other) + 0.1, (same, other)
    assert similarity(metric, take(LOW, 1)) == pytest.approx(1.0, abs=1e-4)


def test_the_ordering_holds_from_the_other_voice_too(metric):
    low2, high1, high2 = (metric.embed(take(k, n), RATE) for k, n in ((LOW, 2), (HIGH, 1), (HIGH, 2)))
    assert float(high1 @ high2) > float(high1 @ low2) + 0.1


def test_the_song_sample_rate_is_respected(metric):
    import soxr

    wave = take(LOW, 2)
    at_44k = soxr.resample(wave, RATE, 44100).astype(np.float32)
    assert similarity(metric, at_44k, 44100) == pytest.approx(similarity(metric, wave), abs=0.02)


def test_a_silent_vocal_scores_zero(metric):
    assert similarity(metric, np.zeros(3 * RATE, dtype=np.float32)) == 0.0


def test_missing_or_unreadable_target_is_a_one_line_error(tmp_path):
    for options, fragment in [
        ({}, "voice_similarity needs a target voice"),
        ({"target": str(tmp_path / "nope.wav")}, "target voice file not found"),
    ]:
        with pytest.raises(MetricError, match=fragment) as info:
            build_metric("voice_similarity", **options)
        assert "\n" not in str(info.value)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(MetricError, match="cannot read audio file") as info:
        build_metric("voice_similarity", target=str(bad))
    assert "\n" not in str(info.value)
