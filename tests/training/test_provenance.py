"""`yue-train` against what shards record: stage and tokenizer checked before any model is built, the mode in
the plan table, and the record carried into checkpoints and exported models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.cli import main as prep_main
from tests.training.helpers import compose
from yue_train.cli.train import main as train_main
from yue_train.format.provenance import PROVENANCE_NAME, YUE_TOKENIZER_SHA256
from yue_train.training.validate import check_config, check_data


def _tokenize(manifest: Path, out: Path, mode: str, tokenizer: Path | None = None) -> Path:
    args = ["tokenize", "--manifest", str(manifest), "--root", str(manifest.parent), "--mode", mode]
    args += ["--out", str(out), "--no-progress"] + (["--tokenizer", str(tokenizer)] if tokenizer else [])
    assert prep_main(args) == 0
    return out


@pytest.fixture(scope="module")
def shards(synthetic_corpus, tmp_path_factory) -> dict[str, Path]:
    """Shard folders written by `yue-prep tokenize` (generated stand-in tokenizer)."""
    root = tmp_path_factory.mktemp("shards")
    return {mode: _tokenize(synthetic_corpus, root / mode, mode) for mode in ("cot", "stage2")}


def _train(tmp_path: Path, recipe: str, path: Path, *extra: str) -> list[str]:
    return [
        f"recipe={recipe}", f"trainer.run_dir={tmp_path / 'run'}", f"data.train=[{{path: {path}}}]",
        "data.demo_corpus.enabled=false", "data.eval_fraction=0", "trainer.max_steps=1", *extra,
    ]  # fmt: skip


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("yue-train: error:")]
    assert len(err) == 1, err
    return err[0]


def test_stage2_shards_do_not_train_a_stage1_lora(tmp_path, shards, capsys):
    assert train_main(_train(tmp_path, "tiny_lora", shards["stage2"])) == 2
    line = _error_line(capsys)
    assert "data.train[0] (stage2): stage2 documents are stage-2 data" in line
    assert "stage-1 model (model.stage=1)" in line and "--mode cot|icl" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_stage1_shards_do_not_train_a_stage2_model(tmp_path, shards, capsys):
    assert train_main(_train(tmp_path, "tiny_s2", shards["cot"])) == 2
    line = _error_line(capsys)
    assert "cot documents are stage-1 data" in line and "stage-2 model (model.stage=2)" in line
    assert "--mode stage2" in line


def test_shards_of_another_tokenizer_are_refused(tmp_path, shards, synthetic_corpus, real_tokenizer_path, capsys):
    # stand-in shards, real model.tokenizer
    args = _train(tmp_path, "tiny_lora", shards["cot"], f"model.tokenizer={real_tokenizer_path}")
    assert train_main(args) == 2
    line = _error_line(capsys)
    assert "shards were tokenized with the generated stand-in tokenizer but model.tokenizer is YuE's" in line
    assert f"re-tokenize them with --tokenizer {real_tokenizer_path}" in line
    # real shards, stand-in model.tokenizer (the tiny recipes' default)
    real = _tokenize(synthetic_corpus, tmp_path / "real_cot", "cot", real_tokenizer_path)
    assert train_main(_train(tmp_path, "tiny_lora", real)) == 2
    line = _error_line(capsys)
    assert "tokenized with YuE's tokenizer.model" in line and "model.tokenizer is the generated stand-in" in line
    assert f"set model.tokenizer={real_tokenizer_path.resolve()}" in line
    # the same tokenizer under another path is the same tokenizer: the check passes and the run starts
    copy = tmp_path / "copy.model"
    copy.write_bytes(real_tokenizer_path.read_bytes())
    summary = json.loads((real / "summary.json").read_text())
    assert summary["provenance"]["tokenizer"]["sha256"] == YUE_TOKENIZER_SHA256
    cfg = compose(*_train(tmp_path, "tiny_lora", real, f"model.tokenizer={copy}"))
    check_data(cfg, check_config(cfg))


def test_plan_table_shows_each_datasets_mode(tmp_path, shards, capsys):
    args = [
        "recipe=tiny_lora",
        f"data.train=[{{path: {shards['cot']}, weight: 1}}, {{path: {shards['stage2']}, weight: 1}}]",
    ]
    assert train_main([*args, "--print-plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(line for line in out if line.split()[:2] == ["dataset", "mode"])
    assert head
    rows = {line.split()[0]: line.split()[1] for line in out if line.split()[:1] in (["cot"], ["stage2"])}
    assert rows == {"cot": "cot", "stage2": "stage2"}


@pytest.mark.slow
def test_checkpoint_and_export_carry_provenance(tmp_path, shards, capsys):
    assert train_main(_train(tmp_path, "tiny_lora", shards["cot"])) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "latest"
    record = json.loads((ckpt / PROVENANCE_NAME).read_text())
    assert record["stage"] == 1 and record["modes"] == ["cot"] and record["lora"] is True
    assert record["tokenizer"]["synthetic"] is True and record["vocab_size"] == 83_968 and record["seq_len"] == 256
    assert record["datasets"][0]["path"] == str(shards["cot"].resolve())
    out = tmp_path / "exported"
    assert train_main(["export", str(ckpt), str(out)]) == 0
    exported = json.loads((out / PROVENANCE_NAME).read_text())
    assert exported["stage"] == 1 and exported["tokenizer"] == record["tokenizer"]
    assert exported["exported_from"] == str(ckpt.resolve())
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config and config["architectures"] == ["LlamaForCausalLM"]
