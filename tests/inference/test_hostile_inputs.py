"""Generation inputs that are numbers out of range or broken adapter configs are refused in one line before
any model loads: the stage-1 model here has a valid config but garbage weights, so a check that ran after
loading would fail differently."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.cli import main as infer_main
from tests.adversarial.fifos import unblocking_fifo
from tests.tiny_models import tiny_llama
from yue_train.generation.inputs import GenerateInputError


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``s1``: config fine, weights garbage; ``s2``: a tiny model; ``lora``: a real LoRA adapter folder."""
    import torch
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("hostile_models")
    tiny_llama(seed=0, dtype=torch.float32).save_pretrained(root / "s2")
    shutil.copytree(root / "s2", root / "s1")
    (root / "s1" / "model.safetensors").write_bytes(b"\x00garbage, not weights" * 64)
    peft = get_peft_model(tiny_llama(seed=0, dtype=torch.float32), LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(root / "lora")
    return root


def _args(tmp_path: Path, models: Path, *extra: str) -> list[str]:
    (tmp_path / "genre.txt").write_text("pop female bright")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla la\n\n[chorus]\nna na\n")
    np.save(tmp_path / "ref.npy", np.zeros((1, 1500), dtype=np.int64))
    return [
        "generate", "--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt"),
        "--stage1-model", str(models / "s1"), "--stage2-model", str(models / "s2"), "--out", str(tmp_path / "out"),
        "--ref-codes", str(tmp_path / "ref.npy"), "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def _adapter(tmp_path: Path, models: Path, config: object, name: str = "adapter") -> str:
    folder = tmp_path / name
    shutil.copytree(models / "lora", folder)
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "adapter_config.json").write_text(text)
    return str(folder)


def _lora(models: Path, **changes: object) -> dict:
    config = json.loads((models / "lora" / "adapter_config.json").read_text())
    return {**config, **changes}


NUMBERS = [
    (["--ref-end", "inf"], "--ref-end is inf: give a finite number"),
    (["--ref-end", "nan"], "--ref-end is nan: give a finite number"),
    (["--ref-start=-inf"], "--ref-start is -inf: give a finite number"),
    (["--ref-start", "-2"], "--ref-start -2 is negative"),
    (["--ref-start", "10", "--ref-end", "4"], "--ref-end 4 must be after --ref-start 10"),
    (["--ref-start", "5", "--ref-end", "5"], "--ref-end 5 must be after --ref-start 5"),
    (["--temperature", "nan"], "--temperature is nan: give a finite number"),
    (["--temperature", "inf"], "--temperature is inf: give a finite number"),
    (["--guidance-first", "nan"], "--guidance-first is nan"),
    (["--repetition-penalty", "0"], "--repetition-penalty must be > 0, got 0"),
    (["--n-songs", "0"], "--n-songs must be >= 1, got 0"),
    (["--n-sections", "-1"], "--n-sections must be >= 1, got -1"),
    (["--stage2-batch-size", "0"], "--stage2-batch-size must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
]


@pytest.mark.parametrize("extra,message", NUMBERS, ids=[" ".join(e) for e, _ in NUMBERS])
def test_bad_numbers_are_refused_in_one_line(tmp_path, models, capsys, extra, message):
    assert infer_main(_args(tmp_path, models, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-infer generate: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "out").exists()


def test_prompt_refuses_an_infinite_reference_end(tmp_path, models, capsys):
    args = _args(tmp_path, models, "--ref-end", "inf")
    keep = [a for a in args[1:] if a not in ("--device", "cpu", "--no-progress")]
    drop = {"--stage1-model", "--stage2-model", "--out"}
    prompt = ["prompt", *[a for i, a in enumerate(keep) if a not in drop and keep[i - 1] not in drop]]
    assert infer_main(prompt) == 2
    err = capsys.readouterr().err
    assert err == "yue-infer prompt: error: --ref-end is inf: give a finite number\n"


ADAPTERS = [
    ("empty", {}, "adapter_config.json has peft_type None; a LoRA adapter has 'LORA'"),
    ("not-json", "{peft_type: LORA", "cannot read adapter_config.json (Expecting property name"),
    ("a-list", [1, 2], "adapter_config.json holds a JSON list, not an object"),
    ("rank-string", "rank-string", "has rank r='x'; a LoRA rank is a positive integer"),
    ("rank-zero", "rank-zero", "has rank r=0"),
    ("alpha-nan", "alpha-nan", "has lora_alpha=nan; give a finite number"),
    ("no-targets", "no-targets", "has target_modules=None; list the module names LoRA adapts"),
    ("foreign-targets", "foreign-targets", "targets wq, which the stage-1 model does not have"),
    ("prefix-tuning", "prefix-tuning", "has peft_type 'PREFIX_TUNING'"),
]


@pytest.mark.parametrize("case,config,message", ADAPTERS, ids=[c for c, _, _ in ADAPTERS])
def test_broken_adapter_config_is_refused_before_the_base_model_loads(tmp_path, models, capsys, case, config, message):
    changes = {
        "rank-string": {"r": "x"},
        "rank-zero": {"r": 0},
        "alpha-nan": {"lora_alpha": float("nan")},
        "no-targets": {"target_modules": None},
        "foreign-targets": {"target_modules": ["wq"]},
        "prefix-tuning": {"peft_type": "PREFIX_TUNING"},
    }
    if case in changes:
        config = _lora(models, **changes[case])
    adapter = _adapter(tmp_path, models, config)
    assert infer_main(_args(tmp_path, models, "--adapter", adapter)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"yue-infer generate: error: --adapter {adapter}: ") and err.count("\n") == 1, err
    assert message in err


def test_adapter_files_that_are_not_plain_or_not_safetensors(tmp_path, models, capsys):
    fifo = _adapter(tmp_path, models, {}, "fifo")
    os.unlink(Path(fifo) / "adapter_config.json")
    with unblocking_fifo(Path(fifo) / "adapter_config.json"):
        assert infer_main(_args(tmp_path, models, "--adapter", fifo)) == 2
    assert "is a FIFO (named pipe), not a regular file" in capsys.readouterr().err
    pickled = _adapter(tmp_path, models, _lora(models), "pickled")
    (Path(pickled) / "adapter_model.safetensors").rename(Path(pickled) / "adapter_model.bin")
    assert infer_main(_args(tmp_path, models, "--adapter", pickled)) == 2
    err = capsys.readouterr().err
    assert "no adapter_model.safetensors (a pickle adapter_model.bin is not loaded: it could run code)" in err


def test_a_tokenizer_that_is_not_one_is_refused_in_one_line(tmp_path, models, capsys):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x00" * 100)
    assert infer_main(_args(tmp_path, models, "--tokenizer", str(bad))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"yue-infer generate: error: {bad} is not a SentencePiece tokenizer model")
    assert err.count("\n") == 1


def test_genre_file_that_is_a_fifo_does_not_block(tmp_path, models, capsys):
    args = _args(tmp_path, models)
    os.unlink(tmp_path / "genre.txt")
    with unblocking_fifo(tmp_path / "genre.txt"):
        assert infer_main(args) == 2
    err = capsys.readouterr().err
    assert "genre file: " in err and "is a FIFO (named pipe)" in err


def test_the_python_api_shares_the_checks(tmp_path, models):
    from yue_train.api import Reference, YuE

    adapter = _adapter(tmp_path, models, {})
    with pytest.raises(GenerateInputError, match="adapters .*peft_type None"):
        YuE.from_pretrained(models / "s1", models / "s2", adapters=[adapter], device="cpu")
    yue = YuE(stage1=None, stage2=None, tokenizer=None)  # the checks run before the models are used
    ref = Reference(mix=np.zeros((1, 1500), dtype=np.int64), end=float("inf"))
    with pytest.raises(GenerateInputError, match="Reference.end is inf: give a finite number"):
        yue.generate("pop", "[verse]\nla\n", ref)
    with pytest.raises(GenerateInputError, match="temperature is nan"):
        yue.generate("pop", "[verse]\nla\n", temperature=float("nan"))
    with pytest.raises(GenerateInputError, match="n_songs must be >= 1, got 0"):
        yue.generate("pop", "[verse]\nla\n", n_songs=0)
