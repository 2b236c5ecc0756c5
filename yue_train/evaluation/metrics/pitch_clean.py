"""Pitch-tracker errors removed before a vocal's range is taken: YIN (like every autocorrelation tracker)
sometimes locks onto a multiple or a fraction of the period, and one such frame run sets the strict range.

On the YuE example's real female vocal (``pop.00001.Vocals.mp3``) the raw contour holds a melody between
MIDI 57 and 70 (220-470 Hz) and short runs 12 semitones above it (the 2nd harmonic), 12 below and 19 below
(period doubled and tripled: 104 Hz under a 311 Hz note); the strict range read 35 semitones.

Three rules, in order:

* **continuity**: each voiced frame is compared with the median pitch of the voiced frames within
  ``context_s`` of it. A run of frames far from it, lasting at most ``max_error_s``, that lies a harmonic
  ratio (x2, x3, x4 or its inverse: +-12, +-19.02, +-24 semitones, within ``tolerance`` semitones) away
  from that median or from the note sung just before or after it is moved back by that ratio. Longer runs
  are real leaps and stay.
* **confidence**: a frame still more than ``far`` semitones from the median whose periodicity is weak
  (YIN aperiodicity above ``weak``) is dropped: breath and reverb tails, not a sung note.
* the extreme notes need a longer hold (``extreme_min_ms`` in :mod:`pitch`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from yue_train.evaluation.metrics.pitch_track import PitchTrack

HARMONIC_SHIFTS = 12.0 * np.log2(np.array([2.0, 3.0, 4.0]))  # 12, 19.02, 24 semitones


def _local_median(midi: np.ndarray, half: int) -> np.ndarray:
    """Median of the finite values within ``half`` frames of each frame (NaN where there are none)."""
    padded = np.pad(midi, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    out = np.full(len(midi), np.nan)
    has = np.isfinite(windows).any(axis=1)
    out[has] = np.nanmedian(windows[has], axis=1)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _harmonic_shift(d: float, tolerance: float) -> float:
    """The harmonic shift (+-12, +-19.02, +-24 semitones) within ``tolerance`` of ``d``, else 0."""
    for shift in HARMONIC_SHIFTS:
        for sign in (1.0, -1.0):
            if abs(d - sign * shift) <= tolerance:
                return float(sign * shift)
    return 0.0


def _neighbour_pitch(midi: np.ndarray, ok: np.ndarray, a: int, b: int, reach: int) -> list[float]:
    """The median pitch of up to ``reach`` trusted frames just before ``a`` and just after ``b``."""
    out = []
    before = np.flatnonzero(ok[max(0, a - reach) : a])
    if len(before):
        out.append(float(np.median(midi[max(0, a - reach) + before[-10:]])))
    after = np.flatnonzero(ok[b : b + reach])
    if len(after):
        out.append(float(np.median(midi[b + after[:10]])))
    return out


def clean_track(
    track: PitchTrack,
    context_s: float = 0.5,
    max_error_s: float = 0.3,
    tolerance: float = 0.75,
    far: float = 7.0,
    weak: float = 0.15,
) -> tuple[PitchTrack, int]:
    """The track with harmonic errors folded back and weak far-off frames unvoiced; and how many frames changed.

    A run of voiced frames more than ``far`` semitones from the local median, at most ``max_error_s`` long, is
    compared with the local median and with the pitch just before and just after it (within ``max_error_s``);
    the first of those it lies a harmonic ratio away from sets the shift that moves it back."""
    midi = np.full(len(track.f0_hz), np.nan)
    midi[track.voiced] = 69.0 + 12.0 * np.log2(track.f0_hz[track.voiced] / 440.0)
    ref = _local_median(midi, max(1, int(round(context_s / track.hop_seconds))))
    off = track.voiced & (np.abs(midi - ref) > far)
    max_frames = int(round(max_error_s / track.hop_seconds))
    fixed = midi.copy()
    folded = 0
    for a, b in _runs(off):
        if b - a > max_frames:
            continue  # a held leap: real
        run = float(np.median(midi[a:b]))
        for r in [float(np.median(ref[a:b])), *_neighbour_pitch(midi, track.voiced & ~off, a, b, max_frames)]:
            shift = _harmonic_shift(run - r, tolerance)
            if shift:
                fixed[a:b] -= shift
                folded += b - a
                break
    voiced = track.voiced.copy()
    if track.aperiodicity is not None:
        voiced &= ~((np.abs(fixed - ref) > far) & (track.aperiodicity > weak))
    f0 = np.where(voiced, 440.0 * 2.0 ** ((np.nan_to_num(fixed, nan=69.0) - 69.0) / 12.0), 0.0)
    return replace(track, f0_hz=f0, voiced=voiced), folded + int((track.voiced & ~voiced).sum())
