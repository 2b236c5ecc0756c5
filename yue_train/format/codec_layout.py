"""Where X-Codec codes live in the vocabulary, and how tracks and codebooks are laid out as tokens.

Codebook k, code c -> id ``45334 + 1024 * k + c``. A codes array is ``(n_codebooks, n_frames)``.
"""

from __future__ import annotations

import math

import numpy as np

CODEC_OFFSET = 45_334
CODEBOOK_SIZE = 1024
N_CODEBOOKS = 12
FRAMES_PER_SECOND = 50
SAMPLE_RATE = 16_000
STAGE2_CODEBOOKS = 8
CODEC_ID_END = CODEC_OFFSET + CODEBOOK_SIZE * N_CODEBOOKS  # exclusive
# 0.58 * 50 = 28.999999999999996 in floating point: nudge before truncating so decimal times land on
# the frame they name. 1e-6 frames is far below any timing precision anyone writes.
_FRAME_EPS = 1e-6


def seconds_to_frame(seconds: float) -> int:
    """The frame a time falls in at 50 frames/s: 0.0 -> 0, 0.019 -> 0, 0.02 -> 1, 10.0 -> 500 (frame k covers
    [k/50, (k+1)/50) s; the official preprocessing truncates the same way)."""
    return int(math.floor(seconds * FRAMES_PER_SECOND + _FRAME_EPS))


class CodecRangeError(ValueError):
    """Codes or ids outside the range the format allows."""


def codebook_range(k: int) -> tuple[int, int]:
    """Half-open id range of codebook ``k``."""
    start = CODEC_OFFSET + CODEBOOK_SIZE * k
    return start, start + CODEBOOK_SIZE


def check_codes(codes: np.ndarray, what: str = "codes") -> None:
    """Raise :class:`CodecRangeError` naming the first bad value if a code lies outside 0..1023."""
    if codes.size == 0:
        return
    bad = (codes < 0) | (codes >= CODEBOOK_SIZE)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CodecRangeError(f"{what}: code {int(codes[pos])} at index {pos} is outside 0..{CODEBOOK_SIZE - 1}")


def codes_to_ids(codes: np.ndarray, first_codebook: int = 0) -> np.ndarray:
    """Offset codes to vocabulary ids. ``codes`` is ``(K, T)``; row i is codebook ``first_codebook + i``."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise CodecRangeError(f"codes must be 2-D (n_codebooks, n_frames), got shape {codes.shape}")
    if first_codebook + codes.shape[0] > N_CODEBOOKS:
        raise CodecRangeError(f"codebooks {first_codebook}..{first_codebook + codes.shape[0] - 1} exceed 0..11")
    check_codes(codes)
    offsets = CODEC_OFFSET + CODEBOOK_SIZE * np.arange(first_codebook, first_codebook + codes.shape[0])
    return codes.astype(np.int64) + offsets[:, None]


def ids_to_codes(ids: np.ndarray, first_codebook: int = 0) -> np.ndarray:
    """Inverse of :func:`codes_to_ids`; every id of row i must belong to codebook ``first_codebook + i``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2:
        raise CodecRangeError(f"ids must be 2-D (n_codebooks, n_frames), got shape {ids.shape}")
    offsets = CODEC_OFFSET + CODEBOOK_SIZE * np.arange(first_codebook, first_codebook + ids.shape[0])
    codes = ids - offsets[:, None]
    bad = (codes < 0) | (codes >= CODEBOOK_SIZE)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        lo, hi = codebook_range(first_codebook + row)
        raise CodecRangeError(
            f"id {int(ids[row, col])} at frame {col} is not a codebook-{first_codebook + row} id ({lo}..{hi - 1})"
        )
    return codes


def track_ids(codes: np.ndarray) -> np.ndarray:
    """Codebook-0 token stream of one track: ``(K, T)`` codes -> ``(T,)`` ids."""
    return codes_to_ids(np.asarray(codes)[:1])[0]


def interleave(vocal_ids: np.ndarray, inst_ids: np.ndarray) -> np.ndarray:
    """Dual-track stream, frame by frame, vocal first: v0 i0 v1 i1 ..."""
    if len(vocal_ids) != len(inst_ids):
        raise CodecRangeError(f"vocal and instrumental streams differ in length: {len(vocal_ids)} vs {len(inst_ids)}")
    out = np.empty(2 * len(vocal_ids), dtype=np.int64)
    out[0::2] = vocal_ids
    out[1::2] = inst_ids
    return out


def deinterleave(dual_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a dual-track stream into (vocal, instrumental); a trailing odd token is dropped."""
    dual_ids = np.asarray(dual_ids)
    n = len(dual_ids) // 2 * 2
    return dual_ids[0:n:2], dual_ids[1:n:2]


def flatten_frames(ids: np.ndarray) -> np.ndarray:
    """``(K, T)`` -> frame-major ``(T*K,)``: all codebooks of frame 0, then frame 1, ..."""
    return np.asarray(ids).T.reshape(-1)


def unflatten_frames(flat: np.ndarray, n_codebooks: int) -> np.ndarray:
    """Frame-major ``(T*K,)`` -> ``(K, T)``; the length must be a multiple of ``n_codebooks``."""
    flat = np.asarray(flat)
    if len(flat) % n_codebooks:
        raise CodecRangeError(f"{len(flat)} tokens is not a whole number of {n_codebooks}-codebook frames")
    return flat.reshape(-1, n_codebooks).T
