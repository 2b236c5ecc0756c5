"""``yue-prep build`` over special files and a busy output folder: a FIFO named as a song's audio, lyrics or
song.json rejects that song without blocking; a second build into a folder in use is refused in one line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil

from data_prep.build import BUILD_SUMMARY_NAME, EXIT_FATAL, EXIT_REJECTED, cmd_build
from tests.adversarial.fifos import unblocking_fifo
from tests.data_prep_build.conftest import build_args
from yue_train.data.folder_lock import FolderLock


def test_fifos_reject_their_song_only(tmp_path, demo_songs, codec_dir):
    demo, _ = demo_songs
    songs = tmp_path / "songs"
    shutil.copytree(demo / "demo0001", songs / "a_good")
    for name in ("b_fifo_mix", "c_fifo_lyrics", "d_fifo_song_json"):
        shutil.copytree(demo / "demo0001", songs / name)
        meta = json.loads((songs / name / "song.json").read_text())
        (songs / name / "song.json").write_text(json.dumps({**meta, "id": name}))
    (songs / "b_fifo_mix" / "mix.wav").unlink()
    (songs / "c_fifo_lyrics" / "sections.json").unlink()
    (songs / "d_fifo_song_json" / "song.json").unlink()
    out = tmp_path / "out"
    with contextlib.ExitStack() as fifos:
        for path in ("b_fifo_mix/mix.wav", "c_fifo_lyrics/sections.json", "d_fifo_song_json/song.json"):
            fifos.enter_context(unblocking_fifo(songs / path))
        assert cmd_build(build_args(songs, out, codec_dir, "--modes", "cot")) == EXIT_REJECTED
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == {"b_fifo_mix", "c_fifo_lyrics", "d_fifo_song_json"}, reasons
    assert reasons["b_fifo_mix"].startswith("mix: ") and "mix.wav is a FIFO (named pipe)" in reasons["b_fifo_mix"]
    assert reasons["c_fifo_lyrics"].startswith("lyrics: ") and "is a FIFO" in reasons["c_fifo_lyrics"]
    assert reasons["d_fifo_song_json"].startswith("song.json: ") and "is a FIFO" in reasons["d_fifo_song_json"]
    assert summary["songs_encoded"] == 1 and summary["shards"]["cot"]["documents"] == 1


def test_a_build_into_a_folder_in_use_is_refused(tmp_path, demo_songs, codec_dir, capsys):
    demo, _ = demo_songs
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").write_text("the holder's\n")
    with FolderLock(out, "output folder"):
        assert cmd_build(build_args(demo, out, codec_dir, "--modes", "cot")) == EXIT_FATAL
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"yue-prep build: error: output folder {out} is in use by process {os.getpid()}; wait for it to finish, "
        "stop it, or choose another folder"
    )
    assert sorted(p.name for p in out.iterdir()) == [".yue-lock", "manifest.jsonl"]
    assert (out / "manifest.jsonl").read_text() == "the holder's\n"


def test_a_tokenizer_that_is_not_one_is_refused_before_encoding(tmp_path, demo_songs, codec_dir, capsys):
    demo, _ = demo_songs
    bad = tmp_path / "tokenizer.model"
    bad.write_text("root:x:0:0:root:/root:/bin/bash\n")
    out = tmp_path / "out"
    assert cmd_build(build_args(demo, out, codec_dir, "--tokenizer", str(bad))) == EXIT_FATAL
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"yue-prep build: error: {bad} is not a SentencePiece tokenizer model")
    assert not (out / "codes").exists()  # nothing was encoded
