import json
import subprocess
import sys

import numpy as np
import pytest

from data_prep.cli import main as prep_main
from tests.data_prep.manifests import bad_records, good_record, write_manifest
from yue_train.data.folder_lock import LOCK_NAME
from yue_train.data.shards import iter_documents, read_summary


def _ids_lines(capsys, path) -> list[dict]:
    capsys.readouterr()
    assert prep_main(["inspect", str(path), "--ids"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_golden_cot_streams(reference_example, real_tokenizer_path, tmp_path, capsys):
    """The official example through `yue-prep tokenize --mode cot` gives exactly the official streams."""
    golden = np.load(reference_example.parent / "golden" / "cot_dummy.npz")
    manifest = reference_example / "example" / "jsonl" / "dummy.msa.xcodec_16k.jsonl"
    code = prep_main(
        ["tokenize", "--manifest", str(manifest), "--root", str(reference_example), "--tokenizer",
         str(real_tokenizer_path), "--mode", "cot", "--out", str(tmp_path / "cot"), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    docs = _ids_lines(capsys, tmp_path / "cot")
    assert [d["id"] for d in docs] == ["1", "2", "3", "4"]
    for n, doc in enumerate(docs):
        assert doc["input_ids"] == golden[f"arr_{n}"].tolist()


def test_bad_records_are_reported_and_the_rest_written(tmp_path):
    root = tmp_path / "data"
    bad = bad_records(root)
    records = (
        [good_record(root, "good-1", seed=1)] + [r for r, _ in bad.values()] + [good_record(root, "good-2", seed=2)]
    )
    records.append(good_record(root, "good-1", seed=3))  # duplicate id
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    out = tmp_path / "out"
    code = prep_main(["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--no-progress"])
    assert code == 3  # some records rejected
    summary = read_summary(out)
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    for rid, (_, phrase) in bad.items():
        assert phrase in reasons[rid], (rid, reasons.get(rid))
    assert "duplicate id (first seen on line 1)" in reasons["good-1"]
    assert summary["records_read"] == len(records)
    assert summary["records_rejected"] == len(bad) + 1
    assert summary["documents_written"] == 2
    assert [d.id for d in iter_documents(out)] == ["good-1", "good-2"]
    assert (
        summary["tokens_total"]
        == sum(summary["tokens_per_role"].values())
        == sum(s["n_tokens"] for s in summary["shards"])
    )


def test_strict_makes_a_rejection_fatal_and_keeps_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    bad = bad_records(root)
    records = [good_record(root, "good-1"), bad["range"][0], good_record(root, "good-2", seed=2)]
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    out = tmp_path / "out"
    args = [
        "tokenize",
        "--manifest",
        str(manifest),
        "--root",
        str(root),
        "--out",
        str(out),
        "--no-progress",
        "--strict",
        "--shard-docs",
        "1",
    ]
    assert prep_main(args) == 2
    assert "range" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # the lock file alone: it is never removed


def test_small_track_mismatch_is_trimmed_like_the_official_code(tmp_path):
    root = tmp_path / "data"
    r = good_record(root, "trim")
    np.save(root / r["instrumental_codec"], np.load(root / r["instrumental_codec"])[:, :1495])  # 5 frames short
    r["splitted_lyrics"]["segmented_lyrics"][1]["codec_frame_end"] = 1495
    manifest = write_manifest(tmp_path / "m.jsonl", [r])
    out = tmp_path / "out"
    assert (
        prep_main(["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--no-progress"])
        == 0
    )
    (doc,) = iter_documents(out)
    audio = (doc.input_ids >= 45334) & (doc.input_ids < 46358)
    assert audio.sum() == 2 * 1495


@pytest.mark.parametrize("mode,extra,expected_mode", [
    ("icl", ["--icl-prompt", "mixture"], "icl-mixture"),
    ("stage2", ["--stage2-source", "vocal", "--stage2-source", "inst"], "stage2"),
])  # fmt: skip
def test_other_modes(tmp_path, synthetic_corpus, mode, extra, expected_mode):
    out = tmp_path / mode
    args = [
        "tokenize",
        "--manifest",
        str(synthetic_corpus),
        "--root",
        str(synthetic_corpus.parent),
        "--out",
        str(out),
        "--mode",
        mode,
        "--no-progress",
        *extra,
    ]
    assert prep_main(args) == 0
    docs = list(iter_documents(out))
    assert {d.mode for d in docs} == {expected_mode}
    if mode == "stage2":
        assert [d.meta["source"] for d in docs[:2]] == ["vocal", "inst"] and len(docs) == 8
    assert read_summary(out)["options"]["mode"] == mode


def test_rerun_refuses_overwrites_and_recovers(tmp_path, synthetic_corpus, capsys):
    out = tmp_path / "out"
    args = [
        "tokenize",
        "--manifest",
        str(synthetic_corpus),
        "--root",
        str(synthetic_corpus.parent),
        "--out",
        str(out),
        "--no-progress",
        "--shard-docs",
        "2",
    ]
    assert prep_main(args) == 0
    first = _ids_lines(capsys, out)
    assert prep_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert prep_main([*args, "--overwrite"]) == 0
    assert _ids_lines(capsys, out) == first
    # an interrupted run: a stray temporary shard, no summary
    (out / "summary.json").unlink()
    (out / "cot-000009.tar.tmp").write_bytes(b"partial")
    assert prep_main(args) == 0
    assert "did not finish" in capsys.readouterr().err
    assert _ids_lines(capsys, out) == first
    assert not list(out.glob("*.tmp"))


@pytest.mark.multiprocess
def test_workers_do_not_change_the_shards(tmp_path, synthetic_corpus, capsys):
    base = [
        "tokenize",
        "--manifest",
        str(synthetic_corpus),
        "--root",
        str(synthetic_corpus.parent),
        "--mode",
        "icl",
        "--no-progress",
        "--seed",
        "3",
    ]
    assert prep_main([*base, "--out", str(tmp_path / "w1"), "--workers", "1"]) == 0
    assert prep_main([*base, "--out", str(tmp_path / "w2"), "--workers", "2"]) == 0
    assert _ids_lines(capsys, tmp_path / "w1") == _ids_lines(capsys, tmp_path / "w2")


def test_inspect_view(tmp_path, synthetic_corpus, capsys):
    out = tmp_path / "out"
    prep_main(
        [
            "tokenize",
            "--manifest",
            str(synthetic_corpus),
            "--root",
            str(synthetic_corpus.parent),
            "--out",
            str(out),
            "--mode",
            "icl",
            "--no-progress",
        ]
    )
    capsys.readouterr()
    assert prep_main(["inspect", str(out), "--limit", "1"]) == 0
    text = capsys.readouterr().out
    assert "=== synth0000 [icl-dual]" in text
    assert "[Genre]" in text and "[start_of_reference]" in text
    assert "<SOA><xcodec><dual 600 tok = 6.0 s><EOA>" in text  # the 6 s intro
    assert "<reference dual " in text


def test_console_script_help_and_missing_manifest(tmp_path):
    exe = [sys.executable, "-m", "data_prep.cli"]
    help_text = subprocess.run([*exe, "tokenize", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--icl-prompt" in help_text and "Exit codes" in help_text
    res = subprocess.run(
        [*exe, "tokenize", "--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip().splitlines()[-1]
        == f"yue-prep tokenize: error: manifest not found: {tmp_path / 'nope.jsonl'}"
    )
