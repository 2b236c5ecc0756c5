"""Walks over a folder the user named read nothing outside it unless a flag says so, and never loop:
``yue-prep build`` / ``align`` song folders (``--follow-symlinks``) and the shard folders of ``data.train``
(no flag: name the other folder). ``yue-eval``'s walk is in :mod:`tests.adversarial.test_round2`; the codes
``yue-prep tokenize`` reads are confined to ``--root`` there too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from data_prep.songs import discover

LRC = "[00:00.00][verse]\n[00:00.50]la la\n"


def _song(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"mix.wav": "", "lyrics.lrc": LRC, "tags.txt": "pop", **files}.items():
        (folder / name).write_text(text)
    return folder


def _outside(tmp_path: Path) -> Path:
    """A song folder beside the input, and a secret file there."""
    (tmp_path / "elsewhere").mkdir(exist_ok=True)
    (tmp_path / "elsewhere" / "secret.txt").write_text("private, male")
    return _song(tmp_path / "elsewhere" / "song")


def _link(path: Path, target: Path) -> None:
    if path.exists():
        path.unlink()
    path.symlink_to(target)


BUILD_CASES = {
    "folder-symlink-out": (lambda s, o: _link(s / "b", o), "song folder", "b"),
    "mix-symlink-out": (lambda s, o: _link(_song(s / "b") / "mix.wav", o / "mix.wav"), "mix", "b"),
    "tags-symlink-out": (lambda s, o: _link(_song(s / "b") / "tags.txt", o.parent / "secret.txt"), "tags", "b"),
    "lyrics-symlink-out": (lambda s, o: _link(_song(s / "b") / "lyrics.lrc", o / "lyrics.lrc"), "lyrics", "b"),
    "aligned-lrc-symlink-out": (
        lambda s, o: (
            (_song(s / "b", **{"lyrics.txt": "la la\n"}) / "lyrics.lrc").unlink(),
            _link(s / "b" / "lyrics.aligned.lrc", o / "lyrics.lrc"),
        ),
        "file",
        "b",
    ),
    "stem-symlink-out": (lambda s, o: _link(_song(s / "b") / "vocals.wav", o / "mix.wav"), "vocals", "b"),
    "song-json-absolute": (
        lambda s, o: (_song(s / "b") / "song.json").write_text(json.dumps({"mix": str(o / "mix.wav")})),
        "mix",
        "b",
    ),
    "song-json-dotdot": (
        lambda s, o: (_song(s / "b") / "song.json").write_text(json.dumps({"lyrics": "../../elsewhere/song/lyrics.lrc"})),
        "lyrics",
        "b",
    ),
    "song-json-stem-dotdot": (
        lambda s, o: (_song(s / "b") / "song.json").write_text(json.dumps({"vocals": "../a/mix.wav/../../../x.wav"})),
        "vocals",
        "b",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BUILD_CASES))
def test_a_song_reading_outside_the_input_is_rejected_naming_the_flag(name, tmp_path):
    make, what, song = BUILD_CASES[name]
    songs = tmp_path / "songs"
    _song(songs / "a")
    make(songs, _outside(tmp_path))
    by = {s.id: s for s in discover(songs)}
    assert by["a"].error is None
    error = by[song].error or ""
    assert error.startswith(f"{what} ") and f"leads outside --input {songs}" in error, error
    assert error.endswith("pass --follow-symlinks to read files outside --input") and "\n" not in error


@pytest.mark.parametrize("name", ["folder-symlink-out", "mix-symlink-out", "song-json-absolute"])
def test_the_flag_reads_them(name, tmp_path):
    make, _, song = BUILD_CASES[name]
    songs = tmp_path / "songs"
    songs.mkdir()
    make(songs, _outside(tmp_path))
    by = {s.id: s for s in discover(songs, follow_symlinks=True)}
    assert by[song].error is None


def test_symlink_loops_in_the_songs_folder_are_walked_once(tmp_path):
    songs = tmp_path / "songs"
    _song(songs / "a")
    for k in range(3):
        (songs / f"up{k}").symlink_to(songs)
        (songs / "a" / f"up{k}").symlink_to(songs)  # not entered: a song folder is read one level deep
    by = {s.id: s for s in discover(songs)}
    assert by["a"].error is None and set(by) == {"a", "up0", "up1", "up2"}
    assert all("not a song folder" in (by[f"up{k}"].error or "") for k in range(3))


def test_yue_prep_build_and_align_take_the_flag(tmp_path):
    from data_prep.build import BuildOptions
    from data_prep.cli import build_parser
    from yue_train.cli.options import options_from

    args = build_parser().parse_args(["build", "--input", "x", "--out", "o", "--codec", "c", "--follow-symlinks"])
    assert options_from(args, BuildOptions, modes=("cot",)).follow_symlinks is True
    assert build_parser().parse_args(["align", "x", "--follow-symlinks"]).follow_symlinks is True


def test_yue_prep_align_reports_a_song_outside_the_input(tmp_path, capsys):
    from data_prep.cli import main as prep_main

    songs = tmp_path / "songs"
    _song(songs / "a", **{"lyrics.txt": "la la\n"}).joinpath("lyrics.lrc").unlink()
    _link(songs / "a" / "lyrics.txt", _outside(tmp_path).parent / "secret.txt")
    assert prep_main(["align", str(songs), "--aligner", "pocketsphinx"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "a: not aligned: lyrics " in err and "pass --follow-symlinks" in err, err


# ------------------------------------------------------------------------------------------ shard folders
@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    from tests.training.helpers import write_random_shards

    return write_random_shards(tmp_path_factory.mktemp("walk_shards") / "shards", 20, docs_per_shard=10)


def test_a_shard_symlinked_out_of_its_folder_is_refused(shards, tmp_path):
    from yue_train.data.shard_reader import ShardError, shard_paths

    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    first = sorted(folder.glob("*.tar"))[0]
    elsewhere = tmp_path / "elsewhere" / first.name
    elsewhere.parent.mkdir()
    first.rename(elsewhere)
    first.symlink_to(elsewhere)
    with pytest.raises(ShardError, match=r"is a symlink to .*elsewhere.*, outside its shard folder") as e:
        shard_paths(folder)
    assert "\n" not in str(e.value) and "data.train" in str(e.value)
    (tmp_path / "alias").symlink_to(shards)  # the named folder itself may be a link: its shards lie in it
    assert len(shard_paths(tmp_path / "alias")) == 2


def test_training_over_a_shard_symlinked_out_is_one_line(shards, tmp_path, capsys):
    from yue_train.cli.train import main as train_main

    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    first = sorted(folder.glob("*.tar"))[0]
    first.unlink()
    first.symlink_to(sorted(shards.glob("*.tar"))[0])
    args = ["recipe=tiny_random", f"data.train=[{{path: '{folder}'}}]", f"trainer.run_dir={tmp_path / 'run'}",
            "trainer.max_steps=1", "data.eval_fraction=0", "trainer.cpu_threads=1"]  # fmt: skip
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("yue-train: error: "), err
    assert "outside its shard folder" in err


# ------------------------------------------------------------------------------------------ yue-eval --reference
def _wav(path: Path) -> Path:
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32), 16_000)
    return path


def test_yue_eval_reference_reads_nothing_outside_without_the_flag(tmp_path, capsys):
    from inference.evaluate import main as eval_main

    _wav(tmp_path / "songs" / "a.wav")
    outside = _wav(tmp_path / "elsewhere" / "private.wav")
    ref = tmp_path / "ref"
    _wav(ref / "r.wav")
    (ref / "loop").symlink_to(ref)  # walked once
    (ref / "p.wav").symlink_to(outside)
    args = [str(tmp_path / "songs"), "--reference", str(ref), "--metrics", "structure", "--out", str(tmp_path / "o"),
            "--no-progress"]  # fmt: skip
    assert eval_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-eval: error: ") and err.count("\n") == 1, err
    assert "p.wav leads outside the songs folder" in err and "--follow-symlinks" in err
    assert not (tmp_path / "o").exists()
    assert eval_main([*args, "--follow-symlinks"]) == 0
