"""A YIN pitch tracker in numpy: f0 and voicing every 10 ms, no model weights.

Algorithm (de Cheveigné & Kawahara 2002): for each 64 ms frame at 16 kHz the squared-difference function
d(τ) = Σ_j (x_j − x_{j+τ})² over a 32 ms window is computed from an FFT cross-correlation and running
energies, normalised by its cumulative mean (d'(τ) = d(τ)·τ / Σ_{k≤τ} d(k)); the period is the first local
minimum of d' below ``threshold`` (or, in noise, within ``threshold`` of the global minimum), refined
by parabolic interpolation. A frame
is voiced when that minimum is below ``voicing_threshold`` (periodic enough: white noise stays near 1)
and its RMS is above both an absolute floor (−60 dBFS) and ``relative_floor_db`` below the loudest frames
of the track (bleed and reverb tails under the singing stay unvoiced).

Memory is bounded whatever the song's length: frames are a strided view of the wave, and the FFTs run
over :data:`CHUNK_FRAMES` frames at a time (each frame is computed on its own, so the result is the same),
keeping only five numbers per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yue_train.evaluation.metrics.audio import frame_signal, resample

RATE = 16000
HOP = RATE // 100  # 10 ms
WINDOW = 512  # integration window (32 ms)
CHUNK_FRAMES = 2048  # frames per FFT batch (~20 s of audio; ~60 MB of intermediates)


@dataclass
class PitchTrack:
    """Per-frame results; ``f0_hz`` is 0 where ``voiced`` is False."""

    times: np.ndarray  # seconds, frame centres
    f0_hz: np.ndarray
    voiced: np.ndarray  # bool
    hop_seconds: float
    aperiodicity: np.ndarray | None = None  # YIN's dip depth per frame: 0 perfectly periodic, ~1 noise

    @property
    def midi(self) -> np.ndarray:
        """Fractional MIDI note numbers of the voiced frames (A4 = 440 Hz = 69)."""
        return 69.0 + 12.0 * np.log2(self.f0_hz[self.voiced] / 440.0)


def track_pitch(
    wave: np.ndarray,
    sample_rate: int,
    fmin: float = 65.0,
    fmax: float = 1100.0,
    threshold: float = 0.1,
    voicing_threshold: float = 0.25,
    relative_floor_db: float = 40.0,
) -> PitchTrack:
    x = resample(wave, sample_rate, RATE).astype(np.float64)
    tau_min = max(2, int(RATE / fmax))
    tau_max = int(np.ceil(RATE / fmin))
    frames = frame_signal(x, WINDOW + tau_max + 1, HOP, lead=WINDOW // 2)  # window centred on i * HOP
    n_frames = len(frames)
    times = np.arange(n_frames) * HOP / RATE
    rms, best = np.empty(n_frames), np.empty(n_frames, dtype=np.int64)
    aperiodicity, left, right = np.empty(n_frames), np.empty(n_frames), np.empty(n_frames)
    for start in range(0, n_frames, CHUNK_FRAMES):
        block = frames[start : start + CHUNK_FRAMES]
        part = slice(start, start + len(block))
        rms[part] = np.sqrt(np.mean(block[:, :WINDOW] ** 2, axis=1))
        cmnd, chosen = _cmnd_and_period(block, tau_min, tau_max, threshold)
        rows = np.arange(len(block))
        best[part], aperiodicity[part] = chosen, cmnd[rows, chosen]
        left[part] = cmnd[rows, np.clip(chosen - 1, 1, None)]
        right[part] = cmnd[rows, np.clip(chosen + 1, None, tau_max)]
    loud = rms > 10 ** (-60 / 20)
    if loud.any():
        top = np.percentile(rms[loud], 95)
        loud &= rms > top * 10 ** (-relative_floor_db / 20)
    voiced = loud & (aperiodicity < voicing_threshold)
    # parabolic interpolation around the chosen lag
    mid = aperiodicity
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    period = best + np.clip(shift, -1, 1)
    f0 = np.where(voiced, RATE / period, 0.0)
    return PitchTrack(times=times, f0_hz=f0, voiced=voiced, hop_seconds=HOP / RATE, aperiodicity=aperiodicity)


def _cmnd_and_period(frames: np.ndarray, tau_min: int, tau_max: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative-mean-normalised difference (n_frames, tau_max + 1) and the chosen lag per frame."""
    n_fft = 1 << int(np.ceil(np.log2(frames.shape[1] + WINDOW)))
    spec_full = np.fft.rfft(frames, n_fft)
    spec_head = np.fft.rfft(frames[:, :WINDOW], n_fft)
    # acf[τ] = Σ_{j<W} x_j x_{j+τ}
    acf = np.fft.irfft(spec_full * np.conj(spec_head), n_fft)[:, : tau_max + 1]
    sq = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    energy_head = sq[:, WINDOW]
    lags = np.arange(tau_max + 1)
    energy_lag = sq[:, lags + WINDOW] - sq[:, lags]
    diff = np.maximum(energy_head[:, None] + energy_lag - 2 * acf, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.where(cum > 0, cum, 1.0)
    cmnd[:, 1:][cum <= 0] = 1.0
    search = cmnd[:, tau_min : tau_max + 1]
    # the shortest lag whose dip is deep enough: below ``threshold``, or (in noise, where no dip gets
    # that low) within ``threshold`` of the deepest dip, so a noisy frame does not fall an octave down
    # to a multiple of its period whose dip is only slightly deeper
    bar = np.maximum(threshold, search.min(axis=1, keepdims=True) + threshold)
    below = search < bar
    after_first = np.cumsum(below, axis=1) > 0
    rising = np.ones_like(below)
    rising[:, :-1] = search[:, 1:] >= search[:, :-1]
    chosen = np.argmax(after_first & rising, axis=1)  # then down to the bottom of that dip
    return cmnd, chosen + tau_min
