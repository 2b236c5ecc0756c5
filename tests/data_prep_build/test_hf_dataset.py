"""Hugging Face ``datasets`` where they serve users: `yue-prep build --hf-dataset` reads songs from an audio
dataset the test writes (nothing from the hub), and token shards open as a ``datasets.Dataset``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_prep.cli import main as prep_main

datasets = pytest.importorskip("datasets")


def _audio(path: Path) -> dict:
    return {"bytes": path.read_bytes(), "path": path.name}


def write_dataset(songs: Path, out: Path, extra_rows: list[dict] | None = None) -> Path:
    """The demo song folders as one dataset: Audio columns (stored file bytes), lyrics as text (LRC, JSON
    sections or CSV, as each song has them), tags as a list; saved with save_to_disk."""
    rows: dict[str, list] = {"song_id": [], "audio": [], "vocal_stem": [], "instrumental": [], "lyrics": [], "tags": []}
    for folder in sorted(p for p in songs.iterdir() if p.is_dir()):
        meta = json.loads((folder / "song.json").read_text())
        lyrics = next(p for p in folder.iterdir() if p.stem in ("lyrics", "sections"))
        tags = meta.get("tags") or [t.strip() for t in (folder / "tags.txt").read_text().split(",") if t.strip()]
        rows["song_id"].append(folder.name)
        rows["audio"].append(_audio(folder / "mix.wav"))
        rows["vocal_stem"].append(_audio(folder / "vocals.wav"))
        rows["instrumental"].append(_audio(folder / "instrumental.wav"))
        rows["lyrics"].append(lyrics.read_text())
        rows["tags"].append(tags)
    for row in extra_rows or []:
        for key in rows:
            rows[key].append(row.get(key))
    ds = datasets.Dataset.from_dict(rows)
    for column in ("audio", "vocal_stem", "instrumental"):
        ds = ds.cast_column(column, datasets.Audio())
    ds.save_to_disk(str(out))
    return out


COLUMNS = "id=song_id,vocals=vocal_stem"  # mix: the 'audio' column; instrumental, lyrics, tags: same names


@pytest.mark.slow
def test_build_from_hf_dataset_equals_build_from_folders(tmp_path, demo_songs, codec_dir, capsys):
    """The same songs as folders and as dataset rows give the same codes, manifest and shards: the second
    build, into the same --out, reuses every song's codes and every shard set."""
    songs, _ = demo_songs
    first = songs / "demo0000"  # LRC lyrics
    lrc = (first / "lyrics.lrc").read_text()
    bad_rows = [
        {"song_id": "no-mix", "lyrics": lrc, "tags": ["pop"]},
        {"song_id": "broken-audio", "audio": {"bytes": b"not audio at all", "path": "x.wav"},
         "vocal_stem": _audio(first / "vocals.wav"), "instrumental": _audio(first / "instrumental.wav"),
         "lyrics": lrc, "tags": ["pop"]},
        {"song_id": "bad-lyrics", "audio": _audio(first / "mix.wav"), "lyrics": "[00:00.00][verse]\n[00:01.00][chorus]\nla\n",
         "tags": ["pop"]},
    ]  # fmt: skip
    ds_dir = write_dataset(songs, tmp_path / "ds", bad_rows)
    out = tmp_path / "out"
    base = ["build", "--out", str(out), "--codec", str(codec_dir), "--modes", "cot,stage2", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert prep_main([*base, "--input", str(songs)]) == 0
    manifest = (out / "manifest.jsonl").read_text()

    assert prep_main([*base, "--hf-dataset", str(ds_dir), "--hf-columns", COLUMNS]) == 3  # 3: some rejected
    summary = json.loads((out / "build_summary.json").read_text())
    assert summary["songs_found"] == 6 and summary["songs_reused"] == 3 and summary["songs_encoded"] == 0
    assert (out / "manifest.jsonl").read_text() == manifest
    assert all(s["reused"] for s in summary["shards"].values())
    reasons = {r["id"]: (r["source"], r["reason"]) for r in summary["rejected"]}
    assert set(reasons) == {"no-mix", "broken-audio", "bad-lyrics"}
    assert reasons["no-mix"] == (
        f"{ds_dir} row 3",
        "no mix audio (a mix/mixture/song.* file such as song.mp3, or 'mix' in song.json)",
    )
    assert "mix.wav: cannot decode audio" in reasons["broken-audio"][1]
    bad_lyrics = reasons["bad-lyrics"][1]  # every problem of the row at once: its stems and its lyrics
    assert "missing stem(s): vocals, instrumental" in bad_lyrics and "section 0 [verse] has empty lyrics" in bad_lyrics
    err = capsys.readouterr().err
    assert "rejected no-mix" in err and "rejected broken-audio" in err
    assert not (out / ".hf-rows").exists()  # the rows' scratch files are gone


def test_rows_become_song_specs(tmp_path, demo_songs):
    """Every lyrics form a cell can hold, tags as list or string, audio as stored bytes or an array."""
    from data_prep.hf_source import hf_song_specs
    from data_prep.songs import load_sections

    songs, truth = demo_songs
    ds_dir = write_dataset(songs, tmp_path / "ds")
    specs = hf_song_specs(str(ds_dir), {"id": "song_id", "vocals": "vocal_stem"}, tmp_path / "rows")
    assert [s.id for s in specs] == [t["id"] for t in truth] and all(s.error is None for s in specs)
    for spec, t in zip(specs, truth, strict=True):
        assert spec.tags == t["tags"]
        assert spec.mix.read_bytes() == (songs / t["id"] / "mix.wav").read_bytes()
        assert [s.label for s in load_sections(spec)] == [s["label"] for s in t["sections"]]
    # an array cell with its rate, tags as a string, sections as a list of records, no id column
    wave = np.sin(np.arange(8000) / 10).astype(np.float32) * 0.5
    ds = datasets.Dataset.from_dict(
        {
            "mix": [{"array": wave.tolist(), "sampling_rate": 8000}],
            "lyrics": [[{"start": 0.0, "end": 1.0, "label": "verse", "lyrics": "la la"}]],
            "tags": ["pop, female"],
        }
    )
    ds.save_to_disk(str(tmp_path / "arrays"))
    (spec,) = hf_song_specs(str(tmp_path / "arrays"), {}, tmp_path / "rows2")
    assert spec.error is None and spec.id == "row000000" and spec.tags == ["pop", "female"]
    from yue_train.codec.audio_io import load_audio

    assert len(load_audio(spec.mix, 8000)) == 8000
    assert load_sections(spec)[0].lyrics == "la la"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--hf-columns", "mix=nope"], "--hf-columns mix=nope: no such column; the dataset has "),
        (["--hf-columns", "lyric=x"], "unknown key 'lyric'; keys are id, mix, vocals"),
        (["--hf-columns", "mix"], "'mix' is not KEY=COLUMN"),
        (["--hf-columns", "lyrics=tags,tags=song_id", "--hf-split", "test"], "no split 'test'; it has train"),
        (["--input", "songs"], "one of the two"),
        ([], "the dataset has no lyrics column; name it with --hf-columns lyrics=COLUMN"),
    ],
)
def test_hf_dataset_usage_errors_are_one_line(tmp_path, codec_dir, capsys, args, message):
    ds = datasets.Dataset.from_dict({"song_id": ["a"], "audio": [None], "tags": ["pop"]})
    target = tmp_path / "ds"
    if "--hf-split" in args:
        datasets.DatasetDict({"train": ds}).save_to_disk(str(target))
    else:
        ds.save_to_disk(str(target))
    capsys.readouterr()  # the dataset's own progress bar
    argv = ["build", "--hf-dataset", str(target), "--out", str(tmp_path / "out"), "--codec", str(codec_dir), *args]
    assert prep_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("yue-prep build: error: ") and message in err and "\n" not in err


def test_missing_dataset_is_one_line(tmp_path, codec_dir, capsys):
    argv = ["build", "--hf-dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--codec", str(codec_dir)]
    assert prep_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"--hf-dataset {tmp_path / 'nowhere'}: cannot load split 'train'" in err and "\n" not in err


def test_shards_open_as_a_datasets_dataset(tmp_path, synthetic_corpus):
    from yue_train.data.shards import iter_documents, to_hf_dataset
    from yue_train.data.tokenize import TokenizeOptions, run_tokenize
    from yue_train.format.roles import Role

    out = tmp_path / "shards"
    opts = TokenizeOptions(synthetic_corpus, out, root=synthetic_corpus.parent, shard_docs=3, progress=False)
    summary, _ = run_tokenize(opts)
    ds = to_hf_dataset(out, cache_dir=tmp_path / "cache")
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == ["id", "mode", "n_tokens", "input_ids", "roles", "shard", "meta"]
    docs = list(iter_documents(out))
    assert len(ds) == len(docs) == summary["documents_written"]
    assert sum(ds["n_tokens"]) == summary["tokens_total"]
    assert ds["id"] == [d.id for d in docs] and set(ds["mode"]) == {"cot"}
    row = ds.with_format("numpy")[1]
    assert np.array_equal(row["input_ids"], docs[1].input_ids) and np.array_equal(row["roles"], docs[1].roles)
    assert json.loads(ds[1]["meta"]) == docs[1].meta and ds[1]["shard"] == "cot-000000.tar"
    vocal = ds.map(lambda r: {"vocal": int((np.asarray(r["roles"]) == Role.VOCAL).sum())})["vocal"]
    assert sum(vocal) == summary["tokens_per_role"]["vocal"]
    # rewritten shards are read again, not served from the cache
    opts.overwrite, opts.shard_docs = True, 2
    run_tokenize(opts)
    assert to_hf_dataset(out, cache_dir=tmp_path / "cache")["shard"] == [
        f"cot-{i // 2:06d}.tar" for i in range(len(docs))
    ]
