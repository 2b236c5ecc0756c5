"""``yue-prep align SONG_DIR``: a folder with a vocal stem and plain lyrics.txt gets lyrics.aligned.lrc and a CSV."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from data_prep.cli import main
from tests.lyrics.espeak_song import LYRICS, RATE, espeak_available, espeak_song
from yue_train.lyrics.forms import load_lyrics_file

pytest.importorskip("pocketsphinx", reason="the pocketsphinx backend needs `pip install pocketsphinx` (align extra)")


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_align_writes_the_lrc_then_keeps_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = espeak_song(tmp_path)
    folder = tmp_path / "my_song"
    folder.mkdir()
    sf.write(folder / "vocals.wav", song.audio, RATE)
    sf.write(folder / "mix.wav", song.audio, RATE)
    (folder / "lyrics.txt").write_text(LYRICS, encoding="utf-8")
    assert main(["align", str(folder), "--aligner", "pocketsphinx"]) == 0
    out = capsys.readouterr().out
    assert "my_song: aligned, confidence" in out and "1 songs: 1 aligned, 0 not" in out
    sections = load_lyrics_file(folder / "lyrics.aligned.lrc")
    assert [s.label for s in sections] == ["intro", "verse", "inst", "chorus", "outro"]
    assert abs(sections[3].start - song.section_starts[1]) <= 0.3
    assert (folder / "lyrics.alignment.csv").read_text().startswith("line,section,status,score,start,end,text")
    assert main(["align", str(folder), "--aligner", "pocketsphinx"]) == 0
    assert "lyrics.aligned.lrc used as it is" in capsys.readouterr().out


def test_align_without_a_vocal_says_how_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    sf.write(folder / "mix.wav", [0.0] * RATE, RATE)
    (folder / "lyrics.txt").write_text("[verse]\nla la\n", encoding="utf-8")
    assert main(["align", str(folder), "--aligner", "pocketsphinx"]) == 3
    err = capsys.readouterr().err
    assert (
        "s: not aligned: no vocal stem to align the lyrics to: add vocals.wav to the song or pass --separate demucs"
        in err
    )


def test_a_flat_folder_of_mp3s_is_one_line_that_says_what_was_looked_for(tmp_path: Path, capsys) -> None:
    (tmp_path / "track1.mp3").write_bytes(b"")
    assert main(["align", str(tmp_path)]) == 2
    assert "1 audio file(s) (track1.mp3) but no song folder: each song is a folder" in capsys.readouterr().err
