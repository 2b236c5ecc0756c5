"""Audio references for generation (``yue-infer prompt --ref-audio`` / ``--ref-vocal-audio --ref-inst-audio``).

As the official ``infer.py``: the whole file is encoded at 0.5 kbps (codebook 0) and the frames of
``[start, end)`` seconds are kept; a dual reference encodes vocal and accompaniment separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yue_train.codec.audio_io import load_audio
from yue_train.codec.model import YueCodec
from yue_train.format import codec_layout as cl


def _window(n_frames: int, start: float, end: float | None, name: str) -> slice:
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"{name}: reference window [{start}, {end}) s is empty or negative")
    a = int(start * cl.FRAMES_PER_SECOND)
    b = n_frames if end is None else int(end * cl.FRAMES_PER_SECOND)
    if a >= n_frames:
        raise ValueError(
            f"{name}: reference starts at {start} s but the audio has {n_frames / cl.FRAMES_PER_SECOND:.2f} s"
        )
    return slice(a, min(b, n_frames))


def encode_reference(codec: YueCodec, path: str | Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """Codebook-0 codes ``(1, frames)`` of ``path`` between ``start`` and ``end`` seconds."""
    codes = codec.encode(load_audio(path, codec.config.sample_rate), n_codebooks=1)
    return codes[:, _window(codes.shape[1], start, end, str(path))]


def encode_dual_reference(
    codec: YueCodec, vocal: str | Path, inst: str | Path, start: float = 0.0, end: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Codebook-0 codes of the vocal and accompaniment stems, cut to one length (interleave them with
    :func:`yue_train.format.codec_layout.interleave`)."""
    v = codec.encode(load_audio(vocal, codec.config.sample_rate), n_codebooks=1)
    i = codec.encode(load_audio(inst, codec.config.sample_rate), n_codebooks=1)
    n = min(v.shape[1], i.shape[1])
    window = _window(n, start, end, f"{vocal} + {inst}")
    return v[:, :n][:, window], i[:, :n][:, window]
