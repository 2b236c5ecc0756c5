"""The hostile-input corpus (:mod:`tests.adversarial.corpus`) through tokenize and generation: no traceback,
the documented exit codes (0 all written, 3 some rejected, 2 fatal), the good records kept and each bad one
reported with its id and reason.

Training over the broken shards and resuming from the broken checkpoints are at the end of this file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.cli import main as prep_main
from inference.cli import main as infer_main
from tests.adversarial import corpus
from tests.data_prep.manifests import good_record, write_manifest
from yue_train.data.shards import iter_documents, read_summary
from yue_train.data.tokenize import TokenizeOptions, run_tokenize

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> tuple[Path, Path, dict[str, corpus.Case]]:
    root = tmp_path_factory.mktemp("adversarial_records")
    lines, cases = corpus.manifest_lines(root)
    return root, write_manifest(root / "manifest.jsonl", lines), cases


@pytest.fixture(scope="module")
def good_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adversarial_shards")
    manifest = write_manifest(root / "m.jsonl", [good_record(root, f"g{i}", seconds=10, seed=i) for i in range(3)])
    run_tokenize(TokenizeOptions(manifest=manifest, out=root / "good", root=root, progress=False))
    return root / "good"


def test_the_corpus_holds_at_least_30_kinds(records, good_shards, tmp_path):
    _, _, cases = records
    kinds = {
        **cases,
        **corpus.tokenizer_cases(tmp_path / "tok"),
        **corpus.generation_cases(),
        **corpus.shard_cases(good_shards, tmp_path / "shards", tmp_path / "marker"),
    }
    assert len(kinds) >= 30
    by_surface = {c.surface for c in kinds.values()}
    assert by_surface == {"record", "tokenizer", "generate", "shard"}
    for case in corpus.shard_cases(good_shards, tmp_path / "shards2", tmp_path / "marker").values():
        tars = sorted(case.value.glob("*.tar"))
        assert tars and tars[0].read_bytes() != sorted(good_shards.glob("*.tar"))[0].read_bytes(), case.name
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("mode", ["cot", "icl"])
def test_tokenize_rejects_each_bad_record_alone(records, tmp_path, mode):
    root, manifest, cases = records
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    args = ["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--mode", mode,
            "--max-doc-tokens", str(corpus.SUITE_MAX_DOC_TOKENS), "--no-progress",
            "--workers", "2" if mode == "icl" else "1"]  # fmt: skip
    # a subprocess with a deadline: a special file that blocked would fail the test, not hang it
    res = subprocess.run(
        [sys.executable, "-m", "data_prep.cli", *args], capture_output=True, text=True, timeout=180, env=env
    )
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 3, res.stderr[-3000:]
    summary = read_summary(out)
    assert summary["records_read"] == len(manifest.read_bytes().splitlines())
    assert [d.meta["id"] for d in iter_documents(out)] == ["good-first", "good-last"]
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == set(cases)
    for name, case in cases.items():
        assert case.expect in reasons[name], (name, reasons[name])
        assert f"  rejected {name} (line " in res.stderr
    assert summary["records_rejected"] == len(cases)


@pytest.mark.parametrize("kind", ["tok-text", "tok-empty", "tok-random", "tok-folder", "tok-fifo", "tok-huge"])
def test_tokenize_refuses_each_bad_tokenizer_in_one_line(records, tmp_path, capsys, kind):
    root, manifest, _ = records
    case = corpus.tokenizer_cases(tmp_path / "tok")[kind]
    args = ["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(tmp_path / "out"),
            "--tokenizer", str(case.value), "--no-progress"]  # fmt: skip
    assert prep_main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("yue-prep tokenize: error: ") and case.expect in line
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``s1``: a valid config with garbage weights (nothing may load them); ``s2``; ``lora``: a real adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tests.tiny_models import tiny_llama

    root = tmp_path_factory.mktemp("adversarial_models")
    tiny_llama(seed=0, dtype=torch.float32).save_pretrained(root / "s2")
    shutil.copytree(root / "s2", root / "s1")
    (root / "s1" / "model.safetensors").write_bytes(b"\x00not weights" * 100)
    get_peft_model(tiny_llama(dtype=torch.float32), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(
        root / "lora"
    )
    return root


def _generate_args(tmp_path: Path, models: Path, *extra: str) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "genre.txt").write_text("pop")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla la\n")
    return [
        "generate", "--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt"),
        "--stage1-model", str(models / "s1"), "--stage2-model", str(models / "s2"), "--out", str(tmp_path / "out"),
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.slow  # the tiny models take ~10 s to build; tests/inference/test_hostile_inputs.py is the fast twin
def test_generation_refuses_every_bad_number_and_adapter_before_loading(models, tmp_path, capsys):
    cases = {**corpus.generation_cases(), **corpus.adapter_cases(tmp_path / "adapters", models / "lora")}
    for name, case in cases.items():
        extra = case.value if case.surface == "generate" else ["--adapter", str(case.value)]
        assert infer_main(_generate_args(tmp_path / name, models, *extra)) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("yue-infer generate: error: ") and err.count("\n") == 1, (name, err)
        assert case.expect in err, (name, err)
        assert not (tmp_path / name / "out").exists()


# --------------------------------------------------------------------------------------------------
# Training over broken shards and resuming from broken checkpoints
# --------------------------------------------------------------------------------------------------

MEMBERS_IGNORED = {"shard-pickle-member"}  # a KEY.pyd pickle beside the three members a document has


@pytest.mark.slow  # 15 two-step trainings
def test_training_skips_broken_documents_and_names_them(good_shards, tmp_path, capsys):
    from yue_train.cli.train import main as train_main

    marker = tmp_path / "marker"
    for case in corpus.shard_cases(good_shards, tmp_path / "shards", marker).values():
        run = tmp_path / "runs" / case.name
        # Damage that only the document's bytes show (checksum, dtypes, ranges) is found when a row holding the
        # document is read: without a shuffle buffer the broken first document is in the first row. A truncated
        # shard is found while planning, when the shuffle buffer's filling passes the end of what is left.
        shuffle = 64 if case.name == "shard-truncated" else 0
        args = ["recipe=tiny", f"data.train=[{{path: '{case.value}'}}]", f"trainer.run_dir={run}",
                "data.demo_corpus=null", "trainer.max_steps=2", "trainer.save_every=0", "data.eval_fraction=0",
                f"data.shuffle_buffer={shuffle}", "trainer.cpu_threads=1"]  # fmt: skip
        code = train_main(args)
        err = capsys.readouterr().err
        assert "Traceback" not in err and not marker.exists(), (case.name, err)
        skipped = [x for x in err.splitlines() if x.startswith("skipped bad document") and case.name in x]
        if case.name in MEMBERS_IGNORED:  # an extra member is never read: the document itself is intact
            assert code == 0 and not skipped, (case.name, err)
        elif code == 0:  # the broken document was skipped, named with its shard, and why (the checksums in
            # summary.json catch a changed member first; the case's own reason shows where they cannot)
            assert skipped and ("checksum mismatch" in skipped[0] or case.expect in skipped[0]), (case.name, err)
        else:  # nothing readable was left: one line says why
            assert code == 2 and err.count("yue-train: error:") == 1, (case.name, err)


def _ended_cleanly(code: int, err: str, what: str) -> None:
    """Exit 0 (bad parts skipped and said so), or exit 2 with one ``yue-train: error:`` line; never a traceback."""
    assert "Traceback" not in err, (what, err[-3000:])
    assert code in (0, 2), (what, code, err[-3000:])
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("yue-train: error: "), (what, err[-3000:])


@pytest.mark.slow  # 9 short trainings
def test_resuming_from_every_broken_checkpoint_ends_cleanly_and_runs_no_pickle(tmp_path, capsys):
    from tests.training.helpers import write_random_shards
    from yue_train.cli.train import main as train_main

    shards = write_random_shards(tmp_path / "shards", 40)
    data = ["recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", "data.eval_fraction=0", "trainer.cpu_threads=1"]
    good = tmp_path / "good"
    assert train_main([*data, f"trainer.run_dir={good}", "trainer.max_steps=2", "trainer.save_every=1"]) == 0
    capsys.readouterr()
    marker = tmp_path / "marker"
    for name, case in corpus.checkpoint_cases(good, tmp_path / "runs", marker).items():
        code = train_main([*data, f"trainer.run_dir={case.value}", "trainer.max_steps=3", "trainer.save_every=1"])
        err = capsys.readouterr().err
        _ended_cleanly(code, err, name)
        assert not marker.exists(), name
        if code == 0:  # it fell back to the older, intact checkpoint and said which one it skipped and why
            assert "resuming from step-1; skipped step-2 (" in err and case.expect in err, (name, err[-3000:])
