"""Stage-1 generation prompts from a genre file, a lyrics file and an optional codes reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yue_train.data.manifest import RecordError, load_codes
from yue_train.format import sequences as seq
from yue_train.format.files import read_text_capped
from yue_train.tokenizer.mm_tokenizer import MMTokenizer


class PromptInputError(ValueError):
    """Inputs a prompt cannot be built from; the message names the file and the fix."""


MAX_TEXT_BYTES = 1 << 20  # a genre or lyrics file: a song's lyrics are a few KB


@dataclass
class Stage1Prompts:
    sections: list[str]
    first: seq.DocBuilder
    next: list[seq.DocBuilder]


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of a genre or lyrics file of at most :data:`MAX_TEXT_BYTES` (checked from ``os.stat``
    before reading: a FIFO must not block, and a 16 GiB file is refused unread)."""
    try:
        text = read_text_capped(path, f"{what} file", MAX_TEXT_BYTES)
    except FileNotFoundError:
        raise PromptInputError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise PromptInputError(f"{what} file {path} is not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:  # SpecialFileError, or larger than MAX_TEXT_BYTES
        raise PromptInputError(str(e)) from None
    if not text.strip():
        raise PromptInputError(f"{what} file {path} is empty")
    return text


def _codes(path: Path) -> np.ndarray:
    try:
        return load_codes(str(path), Path("."), "reference codes")
    except RecordError as e:
        raise PromptInputError(str(e)) from None


def load_reference(
    start_s: float,
    end_s: float,
    codes: Path | None = None,
    vocal_codes: Path | None = None,
    inst_codes: Path | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The reference (ids, roles) from codes files, or None when no reference is given."""
    if codes is None and vocal_codes is None and inst_codes is None:
        return None
    if codes is not None and (vocal_codes or inst_codes):
        raise PromptInputError("give either --ref-codes (single track) or --ref-vocal-codes/--ref-inst-codes (dual)")
    if codes is None and (vocal_codes is None or inst_codes is None):
        raise PromptInputError("a dual reference needs both --ref-vocal-codes and --ref-inst-codes")
    try:
        if codes is not None:
            return seq.reference_ids_from_codes(start_s, end_s, codes=_codes(codes))
        return seq.reference_ids_from_codes(
            start_s, end_s, vocal_codes=_codes(vocal_codes), inst_codes=_codes(inst_codes)
        )
    except seq.SequenceError as e:
        raise PromptInputError(str(e)) from None


def build_stage1_prompts(
    tokenizer: MMTokenizer, genres: str, lyrics: str, reference: tuple[np.ndarray, np.ndarray] | None = None
) -> Stage1Prompts:
    genres = genres.strip()
    if not genres:
        raise PromptInputError("the genre text is empty; give tags such as 'pop female bright piano'")
    sections = seq.split_lyrics(lyrics)
    if not sections:
        raise PromptInputError("the lyrics have no [label] section; write them as '[verse]\\n...' blocks")
    first = seq.first_section_prompt(tokenizer, genres, sections, reference)
    return Stage1Prompts(sections, first, [seq.next_section_prompt(tokenizer, s) for s in sections[1:]])
