"""Plain lyrics (``lyrics.txt``): lines of text, optionally grouped under ``[verse]`` / ``[chorus]`` markers.

No times: :mod:`yue_train.lyrics.align` finds them in the vocal. Lines before the first marker form a
``[verse]`` block; a marker with no lines under it (``[intro]``, ``[inst]``) is an instrumental block that
fills the gap where it sits. LRC timestamps and ``[ti:...]`` metadata lines are dropped, so a timed LRC can
be re-aligned as plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_LABEL = "verse"
_MARKER_RE = re.compile(r"^\[([A-Za-z][A-Za-z0-9 _-]*)\]$")
_TIME_RE = re.compile(r"\[\d{1,3}:\d{1,2}(?:[.:]\d{1,3})?\]")
_META_RE = re.compile(r"^\[[A-Za-z]+:[^\]]*\]$")


@dataclass
class Block:
    """One ``[label]`` block of plain lyrics: its label and its lines, in order."""

    label: str
    lines: list[str] = field(default_factory=list)


def parse_plain(text: str) -> list[Block]:
    """Blocks of a plain lyrics text; empty blocks are kept (they are instrumental sections)."""
    blocks: list[Block] = []
    for raw in text.splitlines():
        line = _TIME_RE.sub("", raw).strip()
        if not line or _META_RE.match(line):
            continue
        marker = _MARKER_RE.match(line)
        if marker:
            blocks.append(Block(marker.group(1).strip()))
            continue
        if not blocks:
            blocks.append(Block(DEFAULT_LABEL))
        blocks[-1].lines.append(" ".join(line.split()))
    return blocks
