"""A song folder's plain lyrics.txt -> lyrics.aligned.lrc that ``yue-prep build`` reads, and a per-line CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from data_prep.songs import check_lyrics
from tests.lyrics.synthetic import FRAME_S, SyntheticAligner, SyntheticVocal
from tests.lyrics.test_align_core import LINES
from yue_train.lyrics.forms import parse_lrc
from yue_train.lyrics.song_folder import align_folder

ALIGNED_LRC, ALIGNMENT_CSV = "lyrics.aligned.lrc", "lyrics.alignment.csv"


def _folder(tmp_path: Path) -> tuple[Path, SyntheticVocal]:
    (tmp_path / "lyrics.txt").write_text(
        "[verse]\n" + "\n".join(LINES[:3]) + "\n\n[chorus]\n" + "\n".join(LINES[3:]) + "\n", encoding="utf-8"
    )
    v = SyntheticVocal(5).silence(100)
    v.sing(LINES[0]).silence(20).sing(LINES[1]).silence(15)  # LINES[2] is not sung
    v.sing(LINES[3]).silence(30).sing(LINES[4]).silence(120)
    return tmp_path, v


def test_aligned_lrc_is_build_input_and_csv_flags_the_skipped_line(tmp_path: Path) -> None:
    folder, v = _folder(tmp_path)
    aligner = SyntheticAligner(v)
    result = align_folder(folder / "lyrics.txt", aligner.audio(), aligner)
    assert not result.reused and result.lrc == folder / ALIGNED_LRC
    lrc = result.lrc.read_text(encoding="utf-8")
    assert f"[skipped: {LINES[2]}]" in lrc
    sections = parse_lrc(lrc, ALIGNED_LRC)
    check_lyrics(sections)
    assert [s.label for s in sections] == ["intro", "verse", "chorus", "outro"]
    assert abs(sections[1].start - v.truth[0][0] * FRAME_S) <= FRAME_S
    assert abs(sections[2].start - v.truth[2][0] * FRAME_S) <= FRAME_S
    assert sections[1].lyrics.splitlines() == LINES[:2]  # the skipped line is not in the training text
    rows = list(csv.DictReader((folder / ALIGNMENT_CSV).open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "ok", "ok"]
    assert rows[2]["start"] == "" and float(rows[0]["score"]) > 0.8


def test_a_hand_corrected_lrc_is_used_as_is(tmp_path: Path) -> None:
    folder, v = _folder(tmp_path)
    aligner = SyntheticAligner(v)
    align_folder(folder / "lyrics.txt", aligner.audio(), aligner)
    corrected = "[00:01.00][verse]\n[00:01.00] the night is young\n"
    (folder / ALIGNED_LRC).write_text(corrected, encoding="utf-8")
    again = align_folder(folder / "lyrics.txt", aligner.audio(), aligner)
    assert again.reused and again.alignment is None
    assert (folder / ALIGNED_LRC).read_text(encoding="utf-8") == corrected
    forced = align_folder(folder / "lyrics.txt", aligner.audio(), aligner, force=True)
    assert not forced.reused and (folder / ALIGNED_LRC).read_text(encoding="utf-8") != corrected
