"""synth-demo -> build (tiny random codec, CPU) -> every shard set -> inspect; re-runs reuse what is done."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_prep.build import BUILD_SUMMARY_NAME, MODES, cmd_build
from data_prep.mixture import MIXTURE_NAME
from data_prep.songs import seconds_to_frame
from data_prep.synth_demo import add_synth_demo_args, cmd_synth_demo
from tests.conftest import FIXTURES
from tests.data_prep_build.conftest import build_args
from yue_train.codec.folder import codec_fingerprint
from yue_train.data.manifest import load_song
from yue_train.data.shards import iter_documents
from yue_train.format import codec_layout as cl
from yue_train.format.parsing import parse_stage2_output
from yue_train.format.roles import Role
from yue_train.lyrics.forms import segment_text

TAGS = FIXTURES / "yue" / "top_200_tags.json"


def _synth(out: Path, *extra: str) -> int:
    p = argparse.ArgumentParser()
    add_synth_demo_args(p)
    return cmd_synth_demo(p.parse_args(["--out", str(out), *extra]))


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()
    }


def _docs(out: Path, name: str) -> list:
    return list(iter_documents(out / "shards" / name))


def test_synth_demo_is_deterministic_by_seed(tmp_path):
    assert _synth(tmp_path / "a", "--n", "2", "--section-seconds", "1.5") == 0
    assert _synth(tmp_path / "b", "--n", "2", "--section-seconds", "1.5") == 0
    assert _synth(tmp_path / "c", "--n", "2", "--section-seconds", "1.5", "--seed", "1") == 0
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert {k: v[1] for k, v in a.items()} == {k: v[1] for k, v in b.items()}
    assert a["demo0000/mix.wav"][1] != c["demo0000/mix.wav"][1]
    assert sorted(k for k in a if k.startswith("demo0001/")) == [
        "demo0001/instrumental.wav",
        "demo0001/mix.wav",
        "demo0001/sections.json",
        "demo0001/song.json",
        "demo0001/vocals.wav",
    ]


def test_synth_demo_mix_is_the_sum_of_the_stems(demo_songs):
    from yue_train.codec.audio_io import load_audio

    root, _ = demo_songs
    mix, voc, inst = (
        load_audio(root / "demo0000" / f"{n}.wav", allow_silent=True) for n in ("mix", "vocals", "instrumental")
    )
    assert np.abs(mix - (voc + inst)).max() < 2e-4  # 16-bit quantisation of three files
    assert np.abs(voc).max() > 0.05 and np.abs(inst).max() > 0.05


def test_end_to_end_then_reruns(tmp_path, demo_songs, codec_dir, capsys):
    songs_src, truth = demo_songs
    songs = tmp_path / "songs"
    shutil.copytree(songs_src, songs)
    out = tmp_path / "out"
    tags = ["--tags-file", str(TAGS)] if TAGS.exists() else []

    # ---- first build: everything encoded, every shard set written ----
    assert cmd_build(build_args(songs, out, codec_dir, *tags)) == 0
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    assert (summary["songs_encoded"], summary["songs_reused"], summary["songs_rejected"]) == (3, 0, 0)
    assert summary["tag_warnings"] == {}
    mixture = json.loads((out / MIXTURE_NAME).read_text())
    assert [d["name"] for d in mixture["datasets"]] == list(MODES)
    for d in mixture["datasets"]:
        assert d["documents"] == (6 if d["mode"] == "stage2" else 3), d["name"]  # stage 2: vocal + inst per song
        assert d["tokens"] == sum(s["n_tokens"] for s in d["shards"]) > 0
        assert all((out / s["path"]).is_file() for s in d["shards"])
        assert sum(len(doc) for doc in _docs(out, d["name"])) == d["tokens"]
        prov = json.loads((out / d["path"] / "summary.json").read_text())["provenance"]
        assert prov["codec"] == codec_fingerprint(codec_dir) and prov["stage"] == (2 if d["mode"] == "stage2" else 1)
    assert "yue-prep build: warning: no --tokenizer" in capsys.readouterr().err
    assert mixture["tokens_total"] == sum(d["tokens"] for d in mixture["datasets"])

    # ---- the manifest: official records whose frames and text are the source's ----
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [t["id"] for t in truth]
    for rec, t in zip(records, truth, strict=True):
        song = load_song(rec, out, tracks=("vocal", "inst", "mixture"))  # the tokenizer's own loader accepts it
        assert song.vocals.shape == song.mixture.shape == (8, song.n_frames)
        assert abs(song.n_frames - t["seconds"] * 50) <= 1  # the codec's count: HuBERT frames of the padded input
        segs = rec["splitted_lyrics"]["segmented_lyrics"]
        assert [s["codec_frame_start"] for s in segs] == [seconds_to_frame(s["start"]) for s in t["sections"]]
        assert [s["codec_frame_end"] for s in segs[:-1]] == [seconds_to_frame(s["end"]) for s in t["sections"][:-1]]
        # LRC leaves the last section open (-> the last frame); the other forms state its end.
        last = seconds_to_frame(t["sections"][-1]["end"])
        assert segs[-1]["codec_frame_end"] == (song.n_frames if t["form"] == "lrc" else min(last, song.n_frames))
        assert [s["line_content"] for s in segs] == [
            segment_text(s["label"], "\n".join(s["lines"])) for s in t["sections"]
        ]
        assert rec["genres"] == ", ".join(t["tags"])

    # ---- the documents carry the codes: stage 1 = codebook 0, stage 2 = all 8 ----
    rec = records[0]
    vocals = np.load(out / rec["vocals_codec"])
    cot = next(d for d in _docs(out, "cot") if d.id == rec["id"])
    spans = [(s["codec_frame_start"], s["codec_frame_end"]) for s in rec["splitted_lyrics"]["segmented_lyrics"]]
    assert cot.meta["segments_skipped"] == 0
    want = np.concatenate([cl.track_ids(vocals)[a:b] for a, b in spans])
    np.testing.assert_array_equal(cot.input_ids[cot.roles == Role.VOCAL], want)
    s2 = next(d for d in _docs(out, "stage2") if d.id == rec["id"] and d.meta["source"] == "vocal")
    got = parse_stage2_output(s2.input_ids)
    assert s2.meta["chunks_skipped"] == 0 and got.shape[1] == 300 * s2.meta["chunks_used"]
    np.testing.assert_array_equal(got, vocals[:, : got.shape[1]])

    # ---- yue-prep inspect shows every set ----
    from data_prep.cli import main as prep_main

    capsys.readouterr()
    for name in MODES:
        assert prep_main(["inspect", str(out / "shards" / name), "--limit", "1"]) == 0
        shown = capsys.readouterr().out
        assert f"=== demo0000 [{name}]" in shown
        if name != "stage2":
            assert truth[0]["sections"][1]["lines"][0] in shown  # the verse's first line, decoded

    # ---- second run: nothing is redone, no file is touched ----
    before = _files(out)
    assert cmd_build(build_args(songs, out, codec_dir, *tags)) == 0
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    assert (summary["songs_encoded"], summary["songs_reused"]) == (0, 3)
    assert all(s["reused"] for s in summary["shards"].values())
    after = _files(out)
    for path, (mtime, data) in before.items():
        if path.startswith(("codes/", "shards/")):
            assert after[path] == (mtime, data), path

    # ---- one song's outputs deleted: only that song is encoded again, to the same codes ----
    shutil.rmtree(out / "codes" / "demo0001")
    assert cmd_build(build_args(songs, out, codec_dir, *tags)) == 0
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    assert (summary["songs_encoded"], summary["songs_reused"]) == (1, 2)
    after = _files(out)
    for path, (mtime, data) in before.items():
        if path.startswith("codes/"):
            assert after[path][1] == data, path
            if not path.startswith("codes/demo0001/"):
                assert after[path][0] == mtime, path
        if path.startswith("shards/"):  # same codes -> same shards, so they are kept
            assert after[path] == (mtime, data), path

    # ---- lyrics edited: no re-encoding, but the manifest changed so every set is re-tokenized ----
    sj = songs / "demo0001" / "sections.json"
    data = json.loads(sj.read_text())
    data["sections"][1]["lyrics"] = "a brand new verse"
    sj.write_text(json.dumps(data))
    assert cmd_build(build_args(songs, out, codec_dir, *tags, "--modes", "cot,stage2")) == 0
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    assert (summary["songs_encoded"], summary["songs_reused"]) == (0, 3)
    assert not any(s["reused"] for s in summary["shards"].values())
    assert set(summary["shards"]) == {"cot", "stage2"}
    assert any("a brand new verse" in line for line in (out / "manifest.jsonl").read_text().splitlines())
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_worker_processes_give_the_same_result(tmp_path, demo_songs, codec_dir):
    workers = 2
    songs, _ = demo_songs
    one, many = tmp_path / "one", tmp_path / "many"
    assert cmd_build(build_args(songs, one, codec_dir, "--modes", "cot,stage2", "--threads", "1")) == 0
    assert (
        cmd_build(
            build_args(songs, many, codec_dir, "--modes", "cot,stage2", "--threads", "1", "--workers", str(workers))
        )
        == 0
    )
    assert (one / "manifest.jsonl").read_bytes() == (many / "manifest.jsonl").read_bytes()
    for name in ("cot", "stage2"):
        a, b = _docs(one, name), _docs(many, name)
        assert [d.meta for d in a] == [d.meta for d in b]
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x.input_ids, y.input_ids)
