"""Where the alignment of plain lyrics is written: beside them, named after them.

``lyrics.txt`` -> ``lyrics.aligned.lrc`` (timed lines and sections, what ``yue-prep build`` reads) and
``lyrics.alignment.csv`` (per-line scores). Light on purpose: song discovery imports it.
"""

from __future__ import annotations

from pathlib import Path

PLAIN_LYRICS = "lyrics.txt"


def aligned_lrc_path(plain: Path) -> Path:
    return plain.with_name(plain.stem + ".aligned.lrc")


def alignment_csv_path(plain: Path) -> Path:
    return plain.with_name(plain.stem + ".alignment.csv")


def review_lrc_path(plain: Path) -> Path:
    """An alignment too unsure to use unchecked: the user renames it to :func:`aligned_lrc_path` once checked."""
    return plain.with_name(plain.stem + ".aligned.check.lrc")
