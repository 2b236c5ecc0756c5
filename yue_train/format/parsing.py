"""Generated ids -> code arrays: the inverse of the sequence builders, used by inference and tests."""

from __future__ import annotations

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format import vocab


class ParseError(ValueError):
    """Generated ids that do not have the expected structure."""


def audio_blocks(ids: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each ``<SOA> ... <EOA>`` block's contents, in order."""
    ids = np.asarray(ids)
    soa = np.flatnonzero(ids == vocab.SOA)
    eoa = np.flatnonzero(ids == vocab.EOA)
    if len(soa) != len(eoa):
        raise ParseError(f"unbalanced audio blocks: {len(soa)} <SOA> but {len(eoa)} <EOA>")
    blocks = []
    for n, (s, e) in enumerate(zip(soa, eoa, strict=True)):
        if e < s or (n + 1 < len(soa) and soa[n + 1] < e):
            raise ParseError(f"audio block {n}: <SOA> at {s} and <EOA> at {e} are not properly nested")
        blocks.append((int(s) + 1, int(e)))
    return blocks


def parse_stage1_output(ids: np.ndarray, has_reference: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 generated ids (whole sequence, prompt included) -> (vocal, instrumental) codes, each ``(1, T)``.

    Every ``<SOA> <xcodec> ... <EOA>`` block is a section; with ``has_reference`` the first block is the
    ICL reference and is left out. A block's odd trailing token is dropped, as in the released inference.
    """
    ids = np.asarray(ids, dtype=np.int64)
    blocks = audio_blocks(ids)[1 if has_reference else 0 :]
    vocals, insts = [], []
    for n, (s, e) in enumerate(blocks):
        body = ids[s:e]
        if len(body) and body[0] == vocab.XCODEC:
            body = body[1:]
        v, i = cl.deinterleave(body)
        try:
            vocals.append(cl.ids_to_codes(v[None]))
            insts.append(cl.ids_to_codes(i[None]))
        except cl.CodecRangeError as err:
            raise ParseError(f"section {n} (block at {s - 1}): {err}") from None
    if not vocals:
        return np.zeros((1, 0), np.int16), np.zeros((1, 0), np.int16)
    return np.concatenate(vocals, axis=1).astype(np.int16), np.concatenate(insts, axis=1).astype(np.int16)


def parse_stage2_frames(frame_ids: np.ndarray, n_codebooks: int = cl.STAGE2_CODEBOOKS) -> np.ndarray:
    """Frame-major stage-2 tokens (``cb0 cb1 ... cb7`` per frame) -> ``(n_codebooks, T)`` codes."""
    try:
        return cl.ids_to_codes(cl.unflatten_frames(np.asarray(frame_ids, dtype=np.int64), n_codebooks)).astype(np.int16)
    except cl.CodecRangeError as err:
        raise ParseError(str(err)) from None


def parse_stage2_output(ids: np.ndarray) -> np.ndarray:
    """Stage-2 ids made of chunks ``<SOA> <stage_1> cb0... <stage_2> frames... <EOA>`` -> ``(8, T)`` codes.

    Each chunk's frames are checked against its codebook-0 condition.
    """
    ids = np.asarray(ids, dtype=np.int64)
    chunks = []
    for n, (s, e) in enumerate(audio_blocks(ids)):
        body = ids[s:e]
        if len(body) < 2 or body[0] != vocab.STAGE_1:
            raise ParseError(f"chunk {n}: does not start with <stage_1>")
        split = np.flatnonzero(body == vocab.STAGE_2)
        if len(split) != 1:
            raise ParseError(f"chunk {n}: expected one <stage_2>, found {len(split)}")
        condition, frames = body[1 : split[0]], body[split[0] + 1 :]
        try:
            codes = parse_stage2_frames(frames)
        except ParseError as err:
            raise ParseError(f"chunk {n}: {err}") from None
        if codes.shape[1] != len(condition) or not np.array_equal(cl.track_ids(codes), condition):
            raise ParseError(f"chunk {n}: codebook-0 of the frames differs from the chunk's condition")
        chunks.append(codes)
    if not chunks:
        return np.zeros((cl.STAGE2_CODEBOOKS, 0), np.int16)
    return np.concatenate(chunks, axis=1)
