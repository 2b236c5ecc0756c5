"""``structure``: did the song come out whole? Sections generated against sections requested, how many the
model ended itself with ``<EOA>`` (rather than running out of tokens), how many cannot be parsed into
codebook-0 codes, and the length.

It reads the generation report's entry (``SongAudio.info``: ``sections_requested``, ``sections`` with each
section's ``new_tokens`` and ``eoa``, ``frames``) and the stage-1 ids (``info["stage1_ids"]``), so it
scores songs that have no audio (a training run without a codec). A reference song (no generation report)
gets only its length."""

from __future__ import annotations

from typing import Any

import numpy as np

from yue_train.evaluation.metrics import register
from yue_train.evaluation.metrics.base import MetricResult, SongAudio, SongMetric
from yue_train.format import codec_layout as cl
from yue_train.format import vocab
from yue_train.format.parsing import ParseError, audio_blocks


def failed_parses(ids: np.ndarray, n_sections: int) -> int:
    """Sections among the last ``n_sections`` audio blocks of ``ids`` whose tokens are not codebook-0 codes
    (every section fails when the ``<SOA>``/``<EOA>`` blocks do not pair up)."""
    try:
        blocks = audio_blocks(ids)[-n_sections:] if n_sections else []
    except ParseError:
        return n_sections
    failed = 0
    for s, e in blocks:
        body = np.asarray(ids[s:e], dtype=np.int64)
        body = body[1:] if len(body) and body[0] == vocab.XCODEC else body
        lo, hi = cl.codebook_range(0)
        failed += int(bool(len(body)) and not bool(np.all((body >= lo) & (body < hi))))
    return failed + max(0, n_sections - len(blocks))


def _ended_itself(section: dict[str, Any], max_new_tokens: Any) -> bool:
    if "eoa" in section:
        return bool(section["eoa"])
    # Reports without the flag: a section cut by the budget holds max_new_tokens ids plus the appended <EOA>.
    return max_new_tokens is None or int(section.get("new_tokens", 0)) <= int(max_new_tokens)


@register("structure")
class Structure(SongMetric):
    """Sections requested/generated, sections ended by ``<EOA>``, failed parses, seconds."""

    needs_audio = False  # token metric: runs on songs without audio

    def score(self, song: SongAudio) -> MetricResult:
        info = song.info
        frames = info.get("frames")
        seconds = int(frames) / cl.FRAMES_PER_SECOND if frames is not None else song.seconds
        values: dict[str, float] = {"seconds": float(seconds)}
        sections = info.get("sections")
        if sections is None:
            return MetricResult(values)
        requested = int(info.get("sections_requested") or len(sections))
        generated = len(sections)
        ended = sum(_ended_itself(s, info.get("max_new_tokens")) for s in sections)
        values.update(
            sections_requested=float(requested),
            sections_generated=float(generated),
            sections_fraction=generated / requested if requested else 0.0,
            eoa_fraction=ended / generated if generated else 0.0,
            new_tokens=float(sum(int(s.get("new_tokens", 0)) for s in sections)),
        )
        ids = info.get("stage1_ids")
        if ids is not None:
            values["failed_parses"] = float(failed_parses(np.asarray(ids), generated))
        return MetricResult(values)
