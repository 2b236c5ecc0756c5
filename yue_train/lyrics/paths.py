"""Where the alignment of plain lyrics is written: beside them, named after them; and where the transcription
of a song without lyrics is written: ``lyrics.transcribed.lrc`` in its folder.

``lyrics.txt`` -> ``lyrics.aligned.lrc`` (timed lines and sections, what ``yue-prep build`` reads) and
``lyrics.alignment.csv`` (per-line scores). Light on purpose: song discovery imports it.
"""

from __future__ import annotations

from pathlib import Path

PLAIN_LYRICS = "lyrics.txt"
TRANSCRIBED_LRC = "lyrics.transcribed.lrc"


def aligned_lrc_path(plain: Path) -> Path:
    return plain.with_name(plain.stem + ".aligned.lrc")


def alignment_csv_path(plain: Path) -> Path:
    return plain.with_name(plain.stem + ".alignment.csv")


def review_lrc_path(plain: Path) -> Path:
    """An alignment too unsure to use unchecked: the user renames it to :func:`aligned_lrc_path` once checked."""
    return plain.with_name(plain.stem + ".aligned.check.lrc")


def transcribed_lrc_path(song_folder: Path) -> Path:
    """The transcription of a song without lyrics: timed LRC with guessed sections, read like an aligned LRC."""
    return song_folder / TRANSCRIBED_LRC
