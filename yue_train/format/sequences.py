"""Sequence builders: every token sequence YuE's models see, for training and for generation.

Stage-1 CoT and ICL documents, stage-2 documents, stage-1 generation prompts and the stage-2 chunk
prompt are all built here (``docs/token-format.md`` describes them), following the official YuE
preprocessing (``finetune/core/preprocess_data_conditional_xcodec_segment.py``) and inference
(``inference/infer.py``). Text is encoded call by call exactly where the official code makes a call:
call boundaries change the ids.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format import vocab
from yue_train.format.document import Document
from yue_train.format.roles import Role, stage2_codebook_role
from yue_train.format.song import CODE_FIELDS, Segment, Song

if TYPE_CHECKING:
    from yue_train.tokenizer.mm_tokenizer import MMTokenizer

INSTRUCTION = "Generate music from the given lyrics segment by segment."
START_OF_SEGMENT = "[start_of_segment]"
END_OF_SEGMENT = "[end_of_segment]"
START_OF_REFERENCE = "[start_of_reference]"
END_OF_REFERENCE = "[end_of_reference]"

ICL_PROMPT_MODES = ("dual", "vocal", "inst", "mixture")
STAGE2_CHUNK_FRAMES = 6 * cl.FRAMES_PER_SECOND  # 300 frames = 6 s
STAGE2_MIN_DISTINCT = 25
ICL_MIN_SEGMENT_SECONDS = 1.0
ICL_LENGTH_GRID = np.linspace(20.0, 40.0, 100)  # seconds; the official sampler's support
ICL_LENGTH_MEAN, ICL_LENGTH_VAR = 30.0, 3.0
ICL_MIN_DISTINCT_RATIO = 0.1
ICL_MAX_REDRAWS = 5

_AUDIO_ROLES = {"vocal": Role.PROMPT_VOCAL, "inst": Role.PROMPT_INST, "mixture": Role.PROMPT_MIX}


class SequenceError(ValueError):
    """A song cannot be turned into the requested document."""


class DocBuilder:
    """Accumulates ids and their roles. ``text`` is one official tokenizer call."""

    def __init__(self, tokenizer: MMTokenizer | None = None) -> None:
        self.tokenizer = tokenizer
        self._ids: list[np.ndarray] = []
        self._roles: list[np.ndarray] = []

    def text(self, s: str) -> DocBuilder:
        assert self.tokenizer is not None, "text needs a tokenizer"
        ids = np.asarray(self.tokenizer.encode(s), dtype=np.int64)
        # A literal special piece inside text becomes its special id (official behaviour); mark it so.
        roles = np.where(ids >= vocab.TEXT_VOCAB_END, Role.SPECIAL, Role.TEXT).astype(np.uint8)
        return self._add(ids, roles)

    def special(self, *ids: int) -> DocBuilder:
        return self._add(np.asarray(ids, dtype=np.int64), np.full(len(ids), Role.SPECIAL, dtype=np.uint8))

    def audio(self, ids: np.ndarray, roles: np.ndarray | Role) -> DocBuilder:
        ids = np.asarray(ids, dtype=np.int64)
        if isinstance(roles, Role):
            roles = np.full(len(ids), roles, dtype=np.uint8)
        return self._add(ids, np.asarray(roles, dtype=np.uint8))

    def extend(self, other: DocBuilder) -> DocBuilder:
        self._ids.extend(other._ids)
        self._roles.extend(other._roles)
        return self

    def _add(self, ids: np.ndarray, roles: np.ndarray) -> DocBuilder:
        self._ids.append(ids)
        self._roles.append(roles)
        return self

    @property
    def ids(self) -> np.ndarray:
        return np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)

    @property
    def roles(self) -> np.ndarray:
        return np.concatenate(self._roles) if self._roles else np.zeros(0, dtype=np.uint8)

    def __len__(self) -> int:
        return sum(len(x) for x in self._ids)

    def document(self, **meta) -> Document:
        return Document(input_ids=self.ids, roles=self.roles, meta=meta)


# --------------------------------------------------------------------------------------------------
# Stage 1: shared pieces
# --------------------------------------------------------------------------------------------------


def header_text(genres: str, lyrics: str) -> str:
    return f"{INSTRUCTION}\n[Genre] {genres}\n{lyrics}"


def dual_track_roles(n_tokens: int, first_is_vocal: bool = True, prompt: bool = False) -> np.ndarray:
    v, i = (Role.PROMPT_VOCAL, Role.PROMPT_INST) if prompt else (Role.VOCAL, Role.INST)
    roles = np.empty(n_tokens, dtype=np.uint8)
    a, b = (v, i) if first_is_vocal else (i, v)
    roles[0::2] = a
    roles[1::2] = b
    return roles


def audio_block(b: DocBuilder, ids: np.ndarray, roles: np.ndarray) -> DocBuilder:
    """``<SOA> <xcodec> ids <EOA>``."""
    return b.special(vocab.SOA, vocab.XCODEC).audio(ids, roles).special(vocab.EOA)


def reference_block(b: DocBuilder, ids: np.ndarray, roles: np.ndarray) -> DocBuilder:
    """The ICL reference: ``encode([start_of_reference]) <SOA> <xcodec> ids <EOA> encode([end_of_reference])``."""
    b.text(START_OF_REFERENCE)
    audio_block(b, ids, roles)
    return b.text(END_OF_REFERENCE)


def segment_is_usable(seg: Segment, song: Song, icl: bool) -> bool:
    """The official per-segment filter (the record-level checks live in the manifest loader)."""
    if not (0 <= seg.frame_start < seg.frame_end <= song.n_frames):
        return False
    if icl:
        return seg.duration >= ICL_MIN_SEGMENT_SECONDS
    return seg.frame_end - seg.frame_start >= song.fps


def _song_tracks(song: Song) -> tuple[np.ndarray, np.ndarray]:
    if song.vocals is None or song.instrumental is None:
        raise SequenceError(f"{song.id}: stage-1 documents need vocal and instrumental codes")
    return cl.track_ids(song.vocals), cl.track_ids(song.instrumental)


def _segments_and_tail(
    b: DocBuilder, song: Song, vocal_ids: np.ndarray, inst_ids: np.ndarray, icl: bool
) -> tuple[int, int]:
    """Append every usable segment and ``<EOD>``; returns (segments used, segments skipped)."""
    used = skipped = 0
    for seg in song.segments:
        if not segment_is_usable(seg, song, icl):
            skipped += 1
            continue
        sl = slice(seg.frame_start, seg.frame_end)
        dual = cl.interleave(vocal_ids[sl], inst_ids[sl])
        b.text(START_OF_SEGMENT).text(seg.line_content)
        audio_block(b, dual, dual_track_roles(len(dual)))
        b.text(END_OF_SEGMENT)
        used += 1
    if used == 0:
        raise SequenceError(f"{song.id}: no usable segment (each is empty, outside the codes or under 1 s)")
    b.special(vocab.EOD)
    return used, skipped


def _lyrics(song: Song) -> str:
    return "\n".join(seg.line_content for seg in song.segments)


def build_cot_document(tokenizer: MMTokenizer, song: Song) -> Document:
    """Stage-1 chain-of-thought document: header, then each segment's lyrics and dual-track audio."""
    vocal_ids, inst_ids = _song_tracks(song)
    b = DocBuilder(tokenizer).text(header_text(song.genres, _lyrics(song)))
    used, skipped = _segments_and_tail(b, song, vocal_ids, inst_ids, icl=False)
    return b.document(id=song.id, mode="cot", segments_used=used, segments_skipped=skipped)


# --------------------------------------------------------------------------------------------------
# Stage 1: in-context-learning (reference audio) documents
# --------------------------------------------------------------------------------------------------


def record_rng(seed: int, record_id: str) -> np.random.Generator:
    """A generator per (seed, record): draws do not depend on worker count or record order."""
    return np.random.default_rng([seed, zlib.crc32(record_id.encode("utf-8"))])


def _length_cdf() -> np.ndarray:
    # Normal(mean 30, variance 3) on a 100-point grid over [20, 40] s, normalised; inverse-transform
    # sampled as the official preprocessing does.
    pdf = np.exp(-((ICL_LENGTH_GRID - ICL_LENGTH_MEAN) ** 2) / (2 * ICL_LENGTH_VAR))
    return np.cumsum(pdf / pdf.sum())


_ICL_CDF = _length_cdf()


def draw_prompt_seconds(rng: np.random.Generator) -> float:
    return float(np.interp(rng.random(), _ICL_CDF, ICL_LENGTH_GRID))


@dataclass(frozen=True)
class PromptDraw:
    """Where an ICL prompt was cut, in tokens of the chosen stream relative to the lyric span start."""

    mode: str
    start: int
    length: int
    seconds_drawn: float
    from_chorus: bool
    redraws: int


def _prompt_stream(song: Song, mode: str, span: slice) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids, roles, tokens per frame) of the prompt stream restricted to the lyric span."""
    if mode == "dual":
        vocal_ids, inst_ids = _song_tracks(song)
        ids = cl.interleave(vocal_ids[span], inst_ids[span])
        return ids, dual_track_roles(len(ids), prompt=True), 2
    source = {"vocal": song.vocals, "inst": song.instrumental, "mixture": song.mixture}[mode]
    if source is None:
        raise SequenceError(f"{song.id}: ICL prompt mode {mode!r} needs the record's {CODE_FIELDS[mode]!r} codes")
    ids = cl.track_ids(source)[span]
    return ids, np.full(len(ids), _AUDIO_ROLES[mode], dtype=np.uint8), 1


def draw_icl_prompt(song: Song, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, PromptDraw]:
    """Cut the ICL prompt as the official preprocessing does; returns (ids, roles, where)."""
    if mode not in ICL_PROMPT_MODES:
        raise SequenceError(f"unknown ICL prompt mode {mode!r}; choose one of {', '.join(ICL_PROMPT_MODES)}")
    if not song.segments:
        raise SequenceError(f"{song.id}: no segments")
    span_start = song.segments[0].frame_start
    span_end = song.segments[-1].frame_end
    if not (0 <= span_start < span_end):
        raise SequenceError(f"{song.id}: empty lyric span {span_start}..{span_end}")
    stream, roles, step = _prompt_stream(song, mode, slice(span_start, span_end))
    fps = song.fps
    span_frames = span_end - span_start
    span_tokens = span_frames * step

    seconds = draw_prompt_seconds(rng)
    length = int(seconds * fps) * step
    if length <= 0:
        length = int(fps * step)
    if length >= span_tokens:
        length = span_tokens // 2
    max_start = max(span_tokens - length, 0)

    start, from_chorus = None, False
    choruses = [s for s in song.msa if s.get("label") == "chorus"]
    if choruses:
        chorus = choruses[int(rng.integers(len(choruses)))]
        c_start = max(0, int(chorus.get("start", 0) * fps) - span_start) * step
        c_end = min(span_frames, int(chorus.get("end", song.audio_length_in_sec) * fps) - span_start) * step
        if c_end - length > c_start:
            start, from_chorus = int(rng.integers(c_start, c_end - length + 1)), True
    if start is None:
        start = int(rng.integers(0, max_start + 1))

    redraws = 0
    while (
        len(np.unique(stream[start : start + length])) < length * ICL_MIN_DISTINCT_RATIO and redraws < ICL_MAX_REDRAWS
    ):
        start, from_chorus = int(rng.integers(0, max_start + 1)), False
        redraws += 1
    where = PromptDraw(mode, start, length, seconds, from_chorus, redraws)
    return stream[start : start + length], roles[start : start + length], where


def build_icl_document(tokenizer: MMTokenizer, song: Song, mode: str, rng: np.random.Generator) -> Document:
    """Stage-1 ICL document: the CoT header plus a reference-audio block cut from the song itself."""
    vocal_ids, inst_ids = _song_tracks(song)
    prompt_ids, prompt_roles, where = draw_icl_prompt(song, mode, rng)
    b = DocBuilder(tokenizer).text(header_text(song.genres, _lyrics(song)))
    reference_block(b, prompt_ids, prompt_roles)
    used, skipped = _segments_and_tail(b, song, vocal_ids, inst_ids, icl=True)
    return b.document(
        id=song.id,
        mode=f"icl-{mode}",
        segments_used=used,
        segments_skipped=skipped,
        prompt_start=where.start,
        prompt_tokens=where.length,
        prompt_from_chorus=where.from_chorus,
        prompt_redraws=where.redraws,
    )


# --------------------------------------------------------------------------------------------------
# Stage 2
# --------------------------------------------------------------------------------------------------


def stage2_chunk_prompt(cb0_ids: np.ndarray) -> DocBuilder:
    """``<SOA> <stage_1> codebook-0 ids <stage_2>``: the stage-2 condition for one chunk, in training
    documents and as the generation prompt (:mod:`yue_train.generation.stage2`)."""
    b = DocBuilder().special(vocab.SOA, vocab.STAGE_1)
    return b.audio(cb0_ids, Role.S2_CONDITION).special(vocab.STAGE_2)


def stage2_frame_roles(n_frames: int, n_codebooks: int = cl.STAGE2_CODEBOOKS) -> np.ndarray:
    per_frame = np.array([stage2_codebook_role(k) for k in range(n_codebooks)], dtype=np.uint8)
    return np.tile(per_frame, n_frames)


def build_stage2_document(codes: np.ndarray, record_id: str, source: str = "codec") -> Document:
    """Stage-2 document: 6-second chunks of 8 codebooks, each ``condition + frames + <EOA>``, then ``<EOD>``."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] < cl.STAGE2_CODEBOOKS:
        raise SequenceError(
            f"{record_id}: stage 2 needs >= {cl.STAGE2_CODEBOOKS} codebooks, got codes of shape {codes.shape}"
        )
    ids = cl.codes_to_ids(codes[: cl.STAGE2_CODEBOOKS])
    b = DocBuilder()
    n_chunks = codes.shape[1] // STAGE2_CHUNK_FRAMES
    used = 0
    for c in range(n_chunks):
        chunk = ids[:, c * STAGE2_CHUNK_FRAMES : (c + 1) * STAGE2_CHUNK_FRAMES]
        if len(np.unique(chunk[0])) < STAGE2_MIN_DISTINCT:
            continue
        b.extend(stage2_chunk_prompt(chunk[0]))
        b.audio(cl.flatten_frames(chunk), stage2_frame_roles(chunk.shape[1])).special(vocab.EOA)
        used += 1
    if used == 0:
        raise SequenceError(
            f"{record_id}: no 6-second chunk with >= {STAGE2_MIN_DISTINCT} distinct codebook-0 codes "
            f"({codes.shape[1]} frames, {n_chunks} whole chunks)"
        )
    b.special(vocab.EOD)
    return b.document(id=record_id, mode="stage2", source=source, chunks_used=used, chunks_skipped=n_chunks - used)


# --------------------------------------------------------------------------------------------------
# Stage-1 generation prompts
# --------------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"\[(\w+)\](.*?)(?=\[|\Z)", re.DOTALL)


def split_lyrics(lyrics: str) -> list[str]:
    """Sections of generation lyrics: ``"[label]\\nbody\\n\\n"`` per ``[label]`` found."""
    return [f"[{label}]\n{body.strip()}\n\n" for label, body in _SECTION_RE.findall(lyrics)]


def reference_ids_from_codes(
    start_s: float,
    end_s: float,
    codes: np.ndarray | None = None,
    vocal_codes: np.ndarray | None = None,
    inst_codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ICL reference stream from ``start_s`` to ``end_s``: single track at 50 tokens/s (``codes``)
    or dual at 100 tokens/s (``vocal_codes`` + ``inst_codes``). Returns (ids, roles)."""
    if not 0 <= start_s < end_s:
        raise SequenceError(f"reference window {start_s}..{end_s} s is empty or negative")
    if codes is not None:
        stream = cl.track_ids(codes)
        roles = np.full(len(stream), Role.PROMPT_MIX, dtype=np.uint8)
        rate = cl.FRAMES_PER_SECOND
    elif vocal_codes is not None and inst_codes is not None:
        stream = cl.interleave(cl.track_ids(vocal_codes), cl.track_ids(inst_codes))
        roles = dual_track_roles(len(stream), prompt=True)
        rate = 2 * cl.FRAMES_PER_SECOND
    else:
        raise SequenceError("a reference needs either single-track codes or both vocal and instrumental codes")
    lo, hi = int(start_s * rate), int(end_s * rate)
    if hi > len(stream):
        raise SequenceError(f"reference window ends at {end_s} s but the reference is {len(stream) / rate:.2f} s long")
    return stream[lo:hi], roles[lo:hi]


def first_section_prompt(
    tokenizer: MMTokenizer,
    genres: str,
    sections: list[str],
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> DocBuilder:
    """Prompt for the first section: header [+ reference block] + first section + ``<SOA> <xcodec>``."""
    if not sections:
        raise SequenceError("lyrics have no [label] section; write them as '[verse]\\n...' blocks")
    b = DocBuilder(tokenizer).text(header_text(genres, "\n".join(sections)))
    if reference is not None:
        reference_block(b, *reference)
    return b.text(START_OF_SEGMENT).text(sections[0]).special(vocab.SOA, vocab.XCODEC)


def next_section_prompt(tokenizer: MMTokenizer, section: str) -> DocBuilder:
    """What is appended after a generated section (which ends in ``<EOA>``) to start the next one."""
    return (
        DocBuilder(tokenizer).text(END_OF_SEGMENT).text(START_OF_SEGMENT).text(section).special(vocab.SOA, vocab.XCODEC)
    )
