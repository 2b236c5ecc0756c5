"""``yue-prep align --transcribe`` and ``yue-prep build --transcribe``: a song folder without lyrics gets
lyrics.transcribed.lrc from its vocal (a tiny random Whisper: the words are garbage, the structure is checked),
the CLI and build_summary.json say that its section labels are guesses, and a second run uses the file as it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.build import BuildOptions, cmd_build
from data_prep.cli import main
from tests.data_prep_build.conftest import build_args
from yue_train.lyrics.forms import load_lyrics_file
from yue_train.lyrics.transcript import LRC_NOTE_LINE

RATE = 16_000


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from tests.evaluation.random_models import save_random_whisper

    torch.manual_seed(0)
    return save_random_whisper(tmp_path_factory.mktemp("whisper_ts"), timestamps=True, positions=16)


def song_without_lyrics(folder: Path, seconds: float = 4.0) -> Path:
    """A song folder with vocal, instrumental and mix stems and tags, and no lyrics: a tone sung from 1 s on."""
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * RATE)) / RATE
    vocal = (0.3 * np.sin(2 * np.pi * 220 * t) * (t >= 1.0)).astype(np.float32)
    inst = (0.1 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    sf.write(folder / "vocals.wav", vocal, RATE)
    sf.write(folder / "instrumental.wav", inst, RATE)
    sf.write(folder / "song.wav", vocal + inst, RATE)
    (folder / "tags.txt").write_text("pop, female, piano", encoding="utf-8")
    return folder


def test_align_transcribe_writes_the_lrc_then_keeps_it(tmp_path: Path, tiny_whisper: Path, capsys) -> None:
    folder = song_without_lyrics(tmp_path / "hummed")
    argv = ["align", str(folder), "--transcribe", "--whisper", str(tiny_whisper), "--language", "en"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "hummed: transcribed, " in out and "(guessed) -> " in out
    assert "note: section labels [verse]/[chorus] of transcribed songs are guesses" in out
    assert "1 songs: 0 aligned, 1 transcribed, 0 not" in out
    lrc = folder / "lyrics.transcribed.lrc"
    assert lrc.read_text(encoding="utf-8").splitlines()[0] == LRC_NOTE_LINE
    sections = load_lyrics_file(lrc)
    assert sections and all(0.0 <= s.start < 4.0 for s in sections)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "lyrics.transcribed.lrc used as it is" in out and "note:" not in out


@pytest.mark.slow  # a codec encode and two builds: ~18 s on two busy cores
def test_build_transcribe_records_the_guess_in_the_summary(
    tmp_path: Path, tiny_whisper: Path, codec_dir: Path, capsys
) -> None:
    songs = tmp_path / "songs"
    song_without_lyrics(songs / "hummed")
    out = tmp_path / "out"
    args = build_args(songs, out, codec_dir, "--transcribe", "--whisper", str(tiny_whisper), "--modes", "cot")
    assert cmd_build(args) == 0
    summary = json.loads((out / "build_summary.json").read_text())
    info = summary["transcription"]["hummed"]
    assert info["section_labels"].startswith("section labels guessed") and not info["reused"]
    assert "note: section labels [verse]/[chorus]" in capsys.readouterr().out
    assert summary["shards"]["cot"]["documents"] == 1
    # without --transcribe the file is read as it is, as timed lyrics
    assert cmd_build(build_args(songs, out, codec_dir, "--modes", "cot")) == 0
    again = json.loads((out / "build_summary.json").read_text())
    assert again["transcription"]["hummed"] == {
        "lrc": str(songs / "hummed" / "lyrics.transcribed.lrc"),
        "reused": True,
        "section_labels": "as in the file",
    }


def test_a_song_without_lyrics_says_transcribe(tmp_path: Path, capsys) -> None:
    folder = song_without_lyrics(tmp_path / "hummed")
    assert main(["align", str(folder)]) == 3
    assert "hummed: not aligned: no lyrics (" in capsys.readouterr().err
    assert main(["align", str(folder), "--language", "en"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "yue-prep align: error: --whisper and --language set up --transcribe: add --transcribe, or leave them out\n"
    )


def test_transcribe_refuses_dataset_rows_it_cannot_write_beside(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^--transcribe writes lyrics.transcribed.lrc into song folders, which"):
        BuildOptions(out=tmp_path / "out", codec=tmp_path / "codec", hf_dataset="some/dataset", transcribe=True)


def test_missing_whisper_weights_are_named_with_how_to_get_them(tmp_path: Path, capsys) -> None:
    folder = song_without_lyrics(tmp_path / "hummed")
    missing = tmp_path / "no-whisper"
    assert main(["align", str(folder), "--transcribe", "--whisper", str(missing)]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"  hummed: not transcribed: transcription: Whisper weights not found at {missing}; get them with "
        f"`huggingface-cli download openai/whisper-small --local-dir {missing}`"
    )
    assert not (folder / "lyrics.transcribed.lrc").exists()
