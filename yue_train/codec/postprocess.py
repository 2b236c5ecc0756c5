"""YuE's final mix: the 44.1 kHz upsampled mix above 5.5 kHz + the energy-matched 16 kHz reconstruction below.

The official ``replace_low_freq_with_energy_matched`` uses torchaudio's biquad filters (RBJ cookbook,
Q = 0.707, applied causally, output clamped to [-1, 1]). torchaudio is unavailable here and a per-sample
IIR loop in Python would be far too slow, so each biquad is applied as its impulse response, computed from
the recursion until it decays below 1e-12 and convolved by FFT: the same filter to float precision.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

CUTOFF_HZ = 5500.0
Q = 0.707


def biquad_coefficients(kind: str, sample_rate: int, cutoff: float, q: float = Q) -> tuple[np.ndarray, np.ndarray]:
    """(b, a), normalised so a[0] = 1, of the RBJ low-pass or high-pass biquad."""
    w0 = 2 * math.pi * cutoff / sample_rate
    alpha = math.sin(w0) / (2 * q)
    cos = math.cos(w0)
    if kind == "lowpass":
        b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    elif kind == "highpass":
        b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


def impulse_response(b: np.ndarray, a: np.ndarray, tol: float = 1e-12, max_len: int = 1 << 16) -> np.ndarray:
    h = np.zeros(max_len)
    for n in range(max_len):
        acc = b[n] if n < 3 else 0.0
        if n >= 1:
            acc -= a[1] * h[n - 1]
        if n >= 2:
            acc -= a[2] * h[n - 2]
        h[n] = acc
        if n > 8 and abs(h[n]) < tol and abs(h[n - 1]) < tol:
            return h[: n + 1]
    raise ValueError("biquad impulse response does not decay (unstable filter)")


def biquad(wave: np.ndarray, sample_rate: int, cutoff: float, kind: str) -> np.ndarray:
    """Causal biquad along the last axis, clamped to [-1, 1] as torchaudio's ``lfilter`` does by default."""
    h = impulse_response(*biquad_coefficients(kind, sample_rate, cutoff))
    n = wave.shape[-1]
    size = 1 << math.ceil(math.log2(n + len(h) - 1))
    out = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(h, size), size)[..., :n]
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def replace_low_band(
    recon_16k: np.ndarray,
    upsampled: np.ndarray,
    upsampled_rate: int = 44_100,
    cutoff: float = CUTOFF_HZ,
    eps: float = 1e-10,
) -> np.ndarray:
    """Low band of ``recon_16k`` (resampled, RMS-matched to the upsampled low band) + high band of ``upsampled``.

    Both inputs are mono or (channels, samples); the result has the shorter length (the official truncates).
    """
    low_src = soxr.resample(np.asarray(recon_16k, np.float32).T, 16_000, upsampled_rate, quality="HQ").T
    up = np.asarray(upsampled, np.float32)
    a_low = biquad(low_src, upsampled_rate, cutoff, "lowpass")
    b_low = biquad(up, upsampled_rate, cutoff, "lowpass")
    # one global RMS over channels and time, as the official does
    scale = (math.sqrt(float(np.mean(np.square(b_low, dtype=np.float64)))) + eps) / (
        math.sqrt(float(np.mean(np.square(a_low, dtype=np.float64)))) + eps
    )
    b_high = biquad(up, upsampled_rate, cutoff, "highpass")
    n = min(a_low.shape[-1], b_high.shape[-1])
    return (a_low[..., :n] * scale + b_high[..., :n]).astype(np.float32)
