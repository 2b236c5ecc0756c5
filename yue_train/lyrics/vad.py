"""Voice activity of a vocal stem per aligner frame, from its energy.

A separated vocal stem is near silent where nobody sings, so energy is enough: a frame is voiced when its RMS
level is within ``range_db`` of the stem's loud frames (95th percentile) and above ``floor_db`` dBFS. Voiced
runs start ``lead_s`` early so soft onsets are not cut off, and end ``tail_s`` late; the tail is short
because a line placed in the previous line's tail would start in silence.
"""

from __future__ import annotations

import numpy as np


def voiced_frames(
    audio: np.ndarray,
    sample_rate: int,
    frame_s: float,
    n_frames: int,
    range_db: float = 35.0,
    floor_db: float = -55.0,
    lead_s: float = 0.06,
    tail_s: float = 0.02,
) -> np.ndarray:
    """(n_frames,) bool: frame k covers [k * frame_s, (k + 1) * frame_s) of ``audio`` (mono)."""
    hop = frame_s * sample_rate
    db = np.full(n_frames, -200.0)
    for k in range(n_frames):
        a, b = int(round(k * hop)), int(round((k + 1) * hop))
        chunk = audio[a:b]
        if chunk.size:
            db[k] = 10 * np.log10(float(np.mean(np.square(chunk, dtype=np.float64))) + 1e-20)
    if not np.any(db > -200):
        return np.zeros(n_frames, dtype=bool)
    loud = float(np.percentile(db[db > -200], 95))
    voiced = db > max(loud - range_db, floor_db)
    lead, tail = int(round(lead_s / frame_s)), int(round(tail_s / frame_s))
    widened = voiced.copy()
    for k in range(1, lead + 1):
        widened[:-k] |= voiced[k:]
    for k in range(1, tail + 1):
        widened[k:] |= voiced[:-k]
    return widened
