"""Synthetic singing for the metric tests: harmonic tones with known pitch, formant-shaped 'voices'."""

from __future__ import annotations

import numpy as np

RATE = 16000


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def harmonic_tone(midi_per_sample: np.ndarray, rate: int = RATE, harmonics: int = 8, tilt: float = 1.0) -> np.ndarray:
    """A tone whose pitch follows ``midi_per_sample``; harmonic k has amplitude 1 / k**tilt."""
    f0 = midi_to_hz(midi_per_sample)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    out = np.zeros_like(phase)
    for k in range(1, harmonics + 1):
        alias_free = (k * f0) < rate / 2
        out += alias_free * np.sin(k * phase) / k**tilt
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def sweep(start_midi: float, semitones: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A glide linear in semitones from ``start_midi`` to ``start_midi + semitones``."""
    return harmonic_tone(np.linspace(start_midi, start_midi + semitones, int(seconds * rate)), rate)


def melody(notes: list[tuple[float, float]], rate: int = RATE) -> np.ndarray:
    """Held notes: (midi, seconds) pairs, one after the other."""
    return harmonic_tone(np.concatenate([np.full(int(s * rate), m, dtype=np.float64) for m, s in notes]), rate)


VOWELS = {  # first three formants (Hz) of an adult male voice
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}


def voice(
    vowels: str,
    base_midi: float,
    intervals: list[int],
    formant_scale: float,
    tilt: float,
    seconds_per_vowel: float = 0.4,
    rate: int = RATE,
) -> np.ndarray:
    """A sung vowel sequence from a source-filter 'voice': harmonics of f0 rolling off as 1 / k**tilt, shaped by
    resonances at the vowel's formants times ``formant_scale`` (a shorter vocal tract has higher formants).
    Vowel i is sung at ``base_midi + intervals[i % len(intervals)]`` with a 5 Hz vibrato."""
    n = int(seconds_per_vowel * rate)
    t = np.arange(n * len(vowels)) / rate
    midi = np.repeat([base_midi + intervals[i % len(intervals)] for i in range(len(vowels))], n) + 0.3 * np.sin(
        2 * np.pi * 5 * t
    )
    f0 = midi_to_hz(midi)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = np.repeat(np.array([VOWELS[v] for v in vowels]) * formant_scale, n, axis=0)  # (samples, 3)
    kernel = np.ones(rate // 50) / (rate // 50)  # 20 ms glide between vowels
    formants = np.stack([np.convolve(formants[:, j], kernel, mode="same") for j in range(3)], axis=1)
    out = np.zeros_like(phase)
    for k in range(1, 60):
        freq = k * f0
        gain = np.zeros_like(freq)
        for j, bandwidth in enumerate((90.0, 110.0, 160.0)):
            gain += 1.0 / (1.0 + ((freq - formants[:, j]) / bandwidth) ** 2)
        out += (freq < rate / 2 - 200) * gain * np.sin(k * phase) / k**tilt
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    out *= envelope
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)
