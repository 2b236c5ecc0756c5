"""In-context references for stage 1: one track (``mix``) or a vocal + accompaniment pair, given as audio
files, waveforms or codes, turned into the reference block of the first prompt.

As the official ``infer.py``: audio is encoded whole at 0.5 kbps (codebook 0) and the frames of
``[start, end)`` seconds are kept; the stems of a pair are encoded separately and cut to one length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.generation.prompts import PromptInputError

AudioOrCodes = str | Path | np.ndarray


@dataclass
class Reference:
    """An in-context reference for stage 1: one track (``mix``) or a vocal + accompaniment pair.

    Each part is an audio file path, a float waveform at the codec's 16 kHz, or integer X-Codec codes
    ``(n_codebooks, frames)``; audio needs the codec. ``start``/``end``: the window used, in seconds.
    """

    mix: AudioOrCodes | None = None
    vocal: AudioOrCodes | None = None
    inst: AudioOrCodes | None = None
    start: float = 0.0
    end: float = 30.0


def audio_reference(
    mix: Path | None, vocal: Path | None, inst: Path | None, start: float, end: float
) -> Reference | None:
    """The reference ``--ref-audio`` or ``--ref-vocal-audio``/``--ref-inst-audio`` name; None without them."""
    if mix is None and vocal is None and inst is None:
        return None
    if mix is not None and (vocal is not None or inst is not None):
        raise PromptInputError("give either --ref-audio or --ref-vocal-audio/--ref-inst-audio")
    if mix is None and (vocal is None or inst is None):
        raise PromptInputError("a dual audio reference needs both --ref-vocal-audio and --ref-inst-audio")
    return Reference(mix=mix, vocal=vocal, inst=inst, start=start, end=end)


def _codes(value: AudioOrCodes, what: str, codec: Any) -> np.ndarray:
    """Codebook-0-first codes ``(n_codebooks, frames)`` of one reference part."""
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
        if value.ndim != 2:
            raise PromptInputError(f"reference {what}: codes must be (n_codebooks, frames), got {value.shape}")
        try:
            cl.check_codes(value, what=f"reference {what}")
        except cl.CodecRangeError as e:
            raise PromptInputError(str(e)) from None
        return value
    if codec is None:
        raise PromptInputError(f"reference {what}: audio needs a codec (YuE.from_pretrained(..., codec=...))")
    from yue_train.codec.audio_io import MAX_SONG_SECONDS, AudioError, check_wave, load_audio

    try:
        if isinstance(value, np.ndarray):
            wave = check_wave(value, f"reference {what}")
        else:
            wave = load_audio(value, codec.config.sample_rate, max_seconds=MAX_SONG_SECONDS)
    except AudioError as e:
        raise PromptInputError(str(e)) from None
    return codec.encode(wave, n_codebooks=1)


def reference_ids(ref: Reference, codec: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The reference block (ids, roles) of ``ref``, its audio encoded with ``codec``; raises
    :class:`PromptInputError` with one line saying what is wrong."""
    if ref.mix is not None and (ref.vocal is not None or ref.inst is not None):
        raise PromptInputError("a Reference takes either mix (one track) or vocal and inst (two), not both")
    try:
        if ref.mix is not None:
            return seq.reference_ids_from_codes(ref.start, ref.end, codes=_codes(ref.mix, "mix", codec))
        if ref.vocal is None or ref.inst is None:
            raise PromptInputError("a Reference needs mix, or both vocal and inst")
        vocal, inst = _codes(ref.vocal, "vocal", codec), _codes(ref.inst, "inst", codec)
        n = min(vocal.shape[1], inst.shape[1])  # stems encoded apart may differ by a frame
        return seq.reference_ids_from_codes(ref.start, ref.end, vocal_codes=vocal[:, :n], inst_codes=inst[:, :n])
    except seq.SequenceError as e:
        raise PromptInputError(str(e)) from None
