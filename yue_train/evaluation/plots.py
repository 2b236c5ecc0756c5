"""The report's pictures as PNG bytes (matplotlib, no display): a song's spectrogram and its vocal pitch
contour with the detected range."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

FRAME, HOP = 1024, 256  # STFT of the 16 kHz mix: 64 ms windows, 16 ms hop


def log_spectrogram(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """(dB magnitudes ``(freq, time)``, seconds per column) of a Hann-windowed STFT."""
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) < FRAME:
        wave = np.pad(wave, (0, FRAME - len(wave)))
    n = 1 + (len(wave) - FRAME) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(wave, FRAME)[::HOP][:n] * np.hanning(FRAME).astype(np.float32)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T
    return 20 * np.log10(np.maximum(mag, 1e-6)), HOP / sample_rate


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.4))
    ax.set_title(title, fontsize=9)
    return fig, ax


def spectrogram_png(wave: np.ndarray, sample_rate: int, title: str = "spectrogram") -> bytes:
    db, dt = log_spectrogram(wave, sample_rate)
    fig, ax = _figure(title)
    top = float(db.max())
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=top - 80,
        vmax=top,
        extent=(0.0, db.shape[1] * dt, 0.0, sample_rate / 2000),
    )
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("kHz", fontsize=8)
    ax.tick_params(labelsize=7)
    return _png(fig)


def pitch_png(contour: dict[str, Any], title: str = "vocal pitch") -> bytes:
    """``contour``: ``{"times": [...], "f0": [...], "range": [lo, hi]}`` (f0 and range in the same unit;
    unvoiced frames as 0 or NaN)."""
    times = np.asarray(contour.get("times", []), dtype=np.float64)
    f0 = np.asarray(contour.get("f0", []), dtype=np.float64)
    f0 = np.where(np.isfinite(f0) & (f0 > 0), f0, np.nan)
    fig, ax = _figure(title)
    ax.plot(times[: len(f0)], f0[: len(times)], ".", markersize=1.5, color="tab:blue")
    lo_hi = contour.get("range")
    if lo_hi is not None and len(lo_hi) == 2 and all(v is not None and np.isfinite(v) for v in lo_hi):
        lo, hi = (float(v) for v in lo_hi)
        ax.axhspan(lo, hi, color="tab:orange", alpha=0.15)
        for v in (lo, hi):
            ax.axhline(v, color="tab:orange", linewidth=0.8)
        ax.text(0.01, 0.95, f"range {lo:.4g} to {hi:.4g}", transform=ax.transAxes, fontsize=8, va="top")
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel(str(contour.get("unit", "f0 (Hz)")), fontsize=8)
    ax.tick_params(labelsize=7)
    return _png(fig)
