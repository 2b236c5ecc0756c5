"""Known lyrics + frame-level CTC emissions of the vocal -> timed lines, flagged lines, and timed sections.

Lines are placed by :func:`yue_train.lyrics.viterbi.viterbi`. Each line gets a score: over its tokens, the mean
of how close each comes to being the model's most likely token in the best of its frames (``p(token) /
max p``, 1 when it is the top token there). It is about the fraction of the line's tokens the model heard
where they were placed: 1 for a clearly sung line, near 0 for a line forced onto other singing; a stretched
token is not penalised for its held frames. Singing that no line explains (runs of filler frames where the
model hears tokens) is reported as an unmatched span; a span that aligns well to one of the lines is a
repeat of that line, else an extra line. Lines are never moved to cover a span: the user reads the flags.

Sections: a ``[label]`` block with lines spans from its first aligned line's start to its last one's end.
Gaps of at least ``min_gap_s`` between blocks (or at the start and end) become instrumental sections, named
after an empty block the lyrics put there (``[intro]``, ``[inst]``) or intro / inst / outro; shorter gaps are
given to the section before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from yue_train.lyrics.plain import Block
from yue_train.lyrics.viterbi import DEFAULT_PENALTIES, FILLER, Penalties, viterbi

LOW_SCORE = 0.3  # a line scoring below this is flagged "low"
REPEAT_SCORE = 0.5  # an unmatched span aligning to a line at least this well is a repeat of it
MIN_SPAN_S = 0.1  # unmatched spans with less heard-token time than this are noise, not singing
_STRICT = Penalties(filler=1e6, skip=1e6)


class AlignmentError(ValueError):
    """The lyrics could not be aligned to the vocal; the message says why."""


@dataclass(frozen=True)
class Emissions:
    """Per-frame log-probabilities of a CTC model's tokens over a vocal, and how to spell text in its tokens."""

    log_probs: np.ndarray  # (T, V) log-softmax
    frame_s: float
    blank: int
    tokenize: Callable[[str], list[int]]


@dataclass
class AlignedLine:
    index: int
    block: int
    text: str
    start: float | None  # seconds; None when the line was not found
    end: float | None
    score: float
    status: str  # ok | low | skipped | repeated | no-tokens


@dataclass
class Unmatched:
    """Singing between lines that no line of the lyrics explains."""

    start: float
    end: float
    kind: str  # "repeat" | "extra"
    line: int | None  # the repeated line
    score: float


@dataclass
class TimedSection:
    label: str
    start: float
    end: float | None  # None: the audio's end
    lines: list[str] = field(default_factory=list)  # the lines found in the vocal
    block: int | None = None  # the block of the lyrics it comes from (None: a gap between blocks)


@dataclass
class Alignment:
    lines: list[AlignedLine]
    unmatched: list[Unmatched]
    sections: list[TimedSection]

    @property
    def score(self) -> float:
        """The song's confidence: the mean line score (skipped lines count 0)."""
        scored = [ln.score for ln in self.lines if ln.status != "no-tokens"]
        return float(np.mean(scored)) if scored else 0.0

    def flagged(self) -> list[AlignedLine]:
        return [ln for ln in self.lines if ln.status != "ok"]


def _token_score(log_probs: np.ndarray, frames_by_state: dict[int, list[int]], tokens: np.ndarray) -> float:
    best = [max(log_probs[t, tokens[s]] - log_probs[t].max() for t in frames) for s, frames in frames_by_state.items()]
    return float(np.mean(np.exp(best))) if best else 0.0


def _line_frames(
    path: np.ndarray, line_of: np.ndarray, tokens: np.ndarray, blank: int
) -> dict[int, dict[int, list[int]]]:
    """line -> {token state -> frames it holds}."""
    out: dict[int, dict[int, list[int]]] = {}
    for t, s in enumerate(path):
        tok = tokens[s]
        if tok in (FILLER, blank):
            continue
        out.setdefault(int(line_of[s]), {}).setdefault(int(s), []).append(t)
    return out


def _filler_spans(em: Emissions, path: np.ndarray, tokens: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) frames of each run of filler frames holding at least MIN_SPAN_S of heard tokens."""
    heard = em.log_probs.argmax(axis=1) != em.blank
    spans, run = [], []
    for t, s in enumerate([*path, -1]):
        if s >= 0 and tokens[s] == FILLER:
            if heard[t]:
                run.append(t)
            continue
        if run and len(run) * em.frame_s >= MIN_SPAN_S:
            spans.append((run[0], run[-1] + 1))
        run = []
    return spans


def _classify_span(em: Emissions, span: tuple[int, int], token_lines: list[list[int]]) -> tuple[int | None, float]:
    """The line the span's singing matches best and its score."""
    a, b = span
    pad = 2
    lp = em.log_probs[max(0, a - pad) : b + pad]
    best: tuple[int | None, float] = (None, 0.0)
    for i, toks in enumerate(token_lines):
        if not toks or 2 * len(toks) > lp.shape[0] + 1:
            continue
        trellis, path = viterbi(lp, [toks], em.blank, penalties=_STRICT)
        frames = _line_frames(path, trellis.line, trellis.tokens, em.blank).get(0, {})
        if len(frames) < len(toks):
            continue
        score = _token_score(lp, frames, trellis.tokens)
        if score > best[1]:
            best = (i, score)
    return best


def align_lines(
    em: Emissions, texts: list[str], silent: np.ndarray | None = None, penalties: Penalties = DEFAULT_PENALTIES
) -> tuple[list[AlignedLine], list[Unmatched]]:
    """Timed, scored lines (``block`` left 0) and the unmatched singing between them."""
    token_lines = [em.tokenize(t) for t in texts]
    alignable = [i for i, toks in enumerate(token_lines) if toks]
    trellis, path = viterbi(em.log_probs, [token_lines[i] for i in alignable], em.blank, silent, penalties)
    by_line = _line_frames(path, trellis.line, trellis.tokens, em.blank)
    lines = []
    for i, text in enumerate(texts):
        lines.append(AlignedLine(i, 0, text, None, None, 0.0, "no-tokens" if not token_lines[i] else "skipped"))
    for k, i in enumerate(alignable):
        frames = by_line.get(k)
        if not frames:
            continue
        first = min(f[0] for f in frames.values())
        last = max(f[-1] for f in frames.values())
        score = _token_score(em.log_probs, frames, trellis.tokens)
        ln = lines[i]
        ln.start, ln.end, ln.score = first * em.frame_s, (last + 1) * em.frame_s, score
        ln.status = "ok" if score >= LOW_SCORE else "low"
    unmatched = []
    for span in _filler_spans(em, path, trellis.tokens):
        line, score = _classify_span(em, span, token_lines)
        repeat = line is not None and score >= REPEAT_SCORE
        kind, repeated = ("repeat", line) if repeat else ("extra", None)
        unmatched.append(Unmatched(span[0] * em.frame_s, span[1] * em.frame_s, kind, repeated, score))
        if repeat and line is not None and lines[line].status == "ok":
            lines[line].status = "repeated"
    return lines, unmatched


def sections_from_lines(
    blocks: list[Block], lines: list[AlignedLine], duration_s: float, min_gap_s: float = 1.0
) -> list[TimedSection]:
    """Timed sections of the blocks (see the module docstring); AlignmentError when a sung block has no line found."""
    sections: list[TimedSection] = []
    cursor, pending = 0.0, None
    by_block: dict[int, list[AlignedLine]] = {}
    for ln in lines:
        by_block.setdefault(ln.block, []).append(ln)
    for b, block in enumerate(blocks):
        if not block.lines:
            pending = block.label
            continue
        found = [ln for ln in by_block.get(b, []) if ln.start is not None]
        if not found:
            raise AlignmentError(
                f"none of the {len(block.lines)} lines of block {b} [{block.label}] was found in the vocal"
            )
        start = min(ln.start for ln in found if ln.start is not None)
        end = max(ln.end for ln in found if ln.end is not None)
        gap = start - cursor
        if (pending is not None or gap >= min_gap_s) and gap > 0:
            sections.append(TimedSection(pending or ("intro" if not sections else "inst"), cursor, start))
        elif sections:
            sections[-1].end = start
        sections.append(TimedSection(block.label, start, end, [ln.text for ln in found], b))
        cursor, pending = end, None
    if not sections:
        raise AlignmentError("the lyrics have no sung lines to align")
    if (pending is not None or duration_s - cursor >= min_gap_s) and duration_s > cursor:
        sections.append(TimedSection(pending or "outro", cursor, None))
    else:
        sections[-1].end = None
    return sections


def align_blocks(
    em: Emissions,
    blocks: list[Block],
    duration_s: float,
    silent: np.ndarray | None = None,
    penalties: Penalties = DEFAULT_PENALTIES,
    min_gap_s: float = 1.0,
) -> Alignment:
    """Align every line of ``blocks`` and derive the sections."""
    texts, owners = [], []
    for b, block in enumerate(blocks):
        texts += block.lines
        owners += [b] * len(block.lines)
    lines, unmatched = align_lines(em, texts, silent, penalties)
    for ln, b in zip(lines, owners, strict=True):
        ln.block = b
    return Alignment(lines, unmatched, sections_from_lines(blocks, lines, duration_s, min_gap_s))
