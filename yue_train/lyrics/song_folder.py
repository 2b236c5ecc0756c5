"""Align a song's plain ``lyrics.txt`` to its vocal stem and write the result beside the lyrics.

Outputs (:mod:`yue_train.lyrics.paths`): ``lyrics.aligned.lrc`` (what ``yue-prep build`` reads) and
``lyrics.alignment.csv`` (per-line scores). An existing ``lyrics.aligned.lrc`` is the user's (checked, maybe
corrected by hand): it is used as it is and never overwritten unless ``force``. An alignment whose score
is below ``min_score`` goes to ``lyrics.aligned.check.lrc`` instead, so that it is not used unchecked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from yue_train.format.files import read_bytes_capped
from yue_train.lyrics.align import Alignment, AlignmentError, Emissions, align_blocks
from yue_train.lyrics.lrc import to_csv, to_lrc
from yue_train.lyrics.paths import aligned_lrc_path, alignment_csv_path, review_lrc_path
from yue_train.lyrics.plain import parse_plain
from yue_train.lyrics.vad import voiced_frames
from yue_train.lyrics.viterbi import Penalties

MAX_LYRICS_BYTES = 1 << 20  # a song's lyrics: a few KB


class Aligner(Protocol):
    """A backend: the emissions of a vocal (mono float32 at ``sample_rate``) under its acoustic model."""

    name: str
    sample_rate: int
    penalties: Penalties  # what a filler frame and a skipped line cost under this model's emissions

    def emissions(self, audio: np.ndarray) -> Emissions: ...


@dataclass
class FolderAlignment:
    lrc: Path
    alignment: Alignment | None  # None: an existing lyrics.aligned.lrc was used as it is
    reused: bool
    accepted: bool = True  # False: the score was below min_score; lrc is the file to check

    def report(self) -> dict[str, object]:
        """What the build summary records of the song's alignment."""
        info: dict[str, object] = {"lrc": str(self.lrc), "reused": self.reused, "accepted": self.accepted}
        if self.alignment is not None:
            a = self.alignment
            info["score"] = round(a.score, 4)
            info["lines"] = len(a.lines)
            info["flagged"] = [f"line {ln.index + 1} {ln.status} ({ln.score:.2f}): {ln.text}" for ln in a.flagged()]
            info["unmatched"] = [f"{u.kind} {u.start:.2f}-{u.end:.2f} s" for u in a.unmatched]
        return info


def align_audio(aligner: Aligner, audio: np.ndarray, lyrics_text: str) -> Alignment:
    """Align plain lyrics to a vocal (mono at ``aligner.sample_rate``)."""
    blocks = parse_plain(lyrics_text)
    if not any(b.lines for b in blocks):
        raise AlignmentError("the lyrics have no lines to align")
    em = aligner.emissions(audio)
    n_frames = em.log_probs.shape[0]
    silent = ~voiced_frames(audio, aligner.sample_rate, em.frame_s, n_frames)
    return align_blocks(em, blocks, len(audio) / aligner.sample_rate, silent, aligner.penalties)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def align_folder(
    lyrics: Path, vocal: np.ndarray, aligner: Aligner, force: bool = False, min_score: float = 0.0
) -> FolderAlignment:
    """Write ``lyrics.aligned.lrc`` and ``lyrics.alignment.csv`` beside ``lyrics`` (or reuse the LRC there)."""
    out = aligned_lrc_path(lyrics)
    if out.is_file() and not force:
        return FolderAlignment(out, None, True)
    try:
        text = read_bytes_capped(lyrics, "lyrics", MAX_LYRICS_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AlignmentError(f"{lyrics.name} is not UTF-8 text ({e.reason})") from None
    except ValueError as e:
        raise AlignmentError(str(e)) from None
    alignment = align_audio(aligner, vocal, text)
    _write(alignment_csv_path(lyrics), to_csv(alignment))
    accepted = alignment.score >= min_score
    if not accepted:
        out = review_lrc_path(lyrics)
    _write(out, to_lrc(alignment))
    return FolderAlignment(out, alignment, False, accepted)
