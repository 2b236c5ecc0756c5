"""vocal_range and vocal_activity on synthetic singing with known pitch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.evaluation.synth import RATE, harmonic_tone, melody, sweep, voice
from yue_train.evaluation.metrics import MetricError, SongAudio, build_metric


def vocal_song(wave: np.ndarray, rate: int = RATE) -> SongAudio:
    return SongAudio(id="s", sample_rate=rate, mix=np.zeros_like(wave), vocal=wave)


@pytest.mark.parametrize(("start", "semitones"), [(57, 1), (50, 5), (45, 12), (52, 19), (40, 24), (48, 31)])
def test_a_sweep_spanning_n_semitones_has_a_range_of_n(start, semitones):
    wave = sweep(start, semitones, seconds=max(2.0, 0.15 * semitones))
    values = build_metric("vocal_range").score(vocal_song(wave)).values
    assert abs(values["range_semitones"] - semitones) <= 0.5
    assert values["voiced_ratio"] > 0.95


def test_the_range_holds_at_another_sample_rate():
    wave = sweep(47, 12, seconds=2.0, rate=44100)
    assert build_metric("vocal_range").score(vocal_song(wave, 44100)).values["range_semitones"] == 12


def test_notes_shorter_than_40_ms_do_not_count():
    # an octave-and-a-half leap held 30 ms inside a melody spanning 4 semitones
    wave = melody([(60, 0.5), (78, 0.03), (62, 0.5), (64, 0.5)])
    filtered = build_metric("vocal_range").score(vocal_song(wave)).values
    unfiltered = build_metric("vocal_range", min_note_ms=0, extreme_min_ms=0, correct_octaves=False)
    unfiltered = unfiltered.score(vocal_song(wave)).values
    assert filtered["range_semitones"] == 4
    assert unfiltered["range_semitones"] >= 10  # the blip (frames mixing it with its neighbours) counts


def test_the_robust_range_ignores_a_brief_outlier_note():
    wave = melody([(60, 1.0), (62, 1.0), (64, 1.0), (84, 0.1)])
    values = build_metric("vocal_range").score(vocal_song(wave)).values
    assert values["range_semitones"] == 24
    assert values["range_p05_p95_semitones"] == 4


def test_median_pitch_and_voiced_ratio_of_a_held_a4_half_the_time():
    wave = np.concatenate([melody([(69, 2.0)]), np.zeros(2 * RATE, dtype=np.float32)])
    result = build_metric("vocal_range").score(vocal_song(wave))
    assert result.values["median_hz"] == pytest.approx(440.0, abs=1.0)
    assert result.values["median_midi"] == pytest.approx(69.0, abs=0.05)
    assert result.values["voiced_ratio"] == pytest.approx(0.5, abs=0.03)
    contour = result.artifacts
    assert len(contour["times"]) == len(contour["f0"]) == 400 and contour["times"][100] == pytest.approx(1.0)
    assert contour["f0"][100] == pytest.approx(440.0, abs=1.0)
    assert contour["f0"][-10] == 0.0
    assert (contour["range"], contour["stem"]) == ([440.0, 440.0], "vocal")


def test_a_silent_vocal_has_no_range_and_no_median():
    values = build_metric("vocal_range").score(vocal_song(np.zeros(3 * RATE, dtype=np.float32))).values
    assert values["range_semitones"] == 0 and values["voiced_ratio"] == 0 and values["notes"] == 0
    assert "median_hz" not in values
    assert build_metric("vocal_range").score(vocal_song(np.zeros(RATE, dtype=np.float32))).artifacts["range"] is None


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


@pytest.mark.parametrize(
    "wave",
    [np.zeros(4 * RATE, dtype=np.float32), noise(4, 0.3), noise(4, 0.002, seed=1)],
    ids=["silence", "loud white noise", "quiet white noise"],
)
def test_silence_and_noise_have_zero_vocal_activity_and_fail(wave):
    values = build_metric("vocal_activity").score(vocal_song(wave)).values
    assert values == {"activity": 0.0, "failed": 1.0}


def test_vocal_activity_is_the_sung_fraction():
    sung = melody([(60, 0.5), (64, 0.5), (67, 1.0)])
    wave = np.concatenate([np.zeros(RATE, dtype=np.float32), sung, np.zeros(RATE, dtype=np.float32)])
    wave = wave + noise(len(wave) / RATE, 0.001)
    values = build_metric("vocal_activity").score(vocal_song(wave)).values
    assert values["activity"] == pytest.approx(0.5, abs=0.03)
    assert values["failed"] == 0.0


def test_short_breaths_between_phrases_count_as_singing():
    gap = np.zeros(int(0.1 * RATE), dtype=np.float32)
    wave = np.concatenate([melody([(60, 1.0)]), gap, melody([(62, 1.0)])])
    assert build_metric("vocal_activity").score(vocal_song(wave)).values["activity"] > 0.97
    no_bridge = build_metric("vocal_activity", bridge_ms=0).score(vocal_song(wave)).values["activity"]
    assert no_bridge < 0.97


def test_without_stems_the_mix_is_measured():
    tone = harmonic_tone(np.full(2 * RATE, 60.0))
    result = build_metric("vocal_range").score(SongAudio(id="m", sample_rate=RATE, mix=tone))
    assert result.artifacts["stem"] == "mix"
    assert result.values["median_midi"] == pytest.approx(60.0, abs=0.05)


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("vocal_range", {"min_note_ms": -1}, "vocal_range.min_note_ms must be"),
        ("vocal_activity", {"min_activity": 2}, "vocal_activity.min_activity must be a fraction"),
        ("nope", {}, "unknown metric 'nope'"),
    ],
)
def test_bad_options_are_one_line_errors(name, options, fragment):
    with pytest.raises(MetricError, match=fragment) as info:
        build_metric(name, **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("snr_db", [20, 10, 6])
def test_the_range_survives_moderate_noise_without_octave_errors(snr_db):
    # a bright voice (weak fundamental) singing an octave with vibrato, under white noise
    wave = voice("aeiouaeiou", 48, [0, 4, 7, 12], formant_scale=1.0, tilt=0.3)
    level = np.sqrt(np.mean(wave**2) / 10 ** (snr_db / 10))
    wave = wave + noise(len(wave) / RATE, level, seed=2)
    values = build_metric("vocal_range").score(vocal_song(wave)).values
    assert abs(values["range_semitones"] - 12) <= 0.5
    assert values["median_midi"] == pytest.approx(52, abs=1)


def _reverb(wave: np.ndarray, seconds: float = 0.4, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """A room: the dry signal plus exponentially decaying noise (RT60 ~ ``seconds``) convolved with it."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    wet = np.convolve(wave, ir)[: len(wave)]
    return (wave + level * wet / np.max(np.abs(wet)) * np.max(np.abs(wave))).astype(np.float32)


def _planted_errors_vocal() -> np.ndarray:
    """A sung melody whose true range is 9 semitones (MIDI 57-66), interrupted by 120 ms blips an octave above,
    a twelfth below and an octave below the note being sung (what YIN reports on a loud 2nd harmonic or a
    period doubled or tripled), with breaths between phrases and reverb."""
    rng = np.random.default_rng(1)
    verse = voice("aeiou", 57, [0, 2, 4, 5, 7], 1.2, 1.0)  # 57 59 61 62 64, 0.4 s each
    answer = voice("oiea", 57, [9, 7, 5, 4], 1.2, 1.0)  # 66 64 62 61
    breath = (0.02 * rng.standard_normal(int(0.3 * RATE))).astype(np.float32)
    planted = [(verse, 1.0, 61 + 12), (answer, 0.2, 66 - 19.02), (verse, 1.0, 61 - 12)]  # (phrase, at s, midi)
    parts = []
    for phrase, at, midi in planted:
        cut = int(at * RATE)
        parts += [phrase[:cut], 0.3 * melody([(midi, 0.12)]), phrase[cut:], breath]
    return _reverb(np.concatenate(parts).astype(np.float32))


def test_planted_octave_errors_reverb_and_breaths_do_not_set_the_strict_range():
    wave = _planted_errors_vocal()
    corrected = build_metric("vocal_range").score(vocal_song(wave)).values
    raw = build_metric("vocal_range", correct_octaves=False).score(vocal_song(wave)).values
    assert corrected["range_semitones"] == 9
    assert corrected["corrected_frames"] > 0
    assert raw["range_semitones"] >= 19  # what the errors make of it: held past extreme_min_ms, only folding helps


def test_the_real_example_vocal_range_is_the_melodys():
    """pop.00001.Vocals.mp3: a melody between ~220 and ~470 Hz (about 13 semitones) with tracker errors."""
    from tests.conftest import fixture_file
    from yue_train.codec.audio_io import load_audio

    wave = load_audio(fixture_file("yue", "prompt_egs", "pop.00001.Vocals.mp3"), RATE)
    values = build_metric("vocal_range").score(vocal_song(wave)).values
    assert 12 <= values["range_semitones"] <= 17
    assert build_metric("vocal_range", correct_octaves=False).score(vocal_song(wave)).values["range_semitones"] > 30
