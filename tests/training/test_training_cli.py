"""The real ``yue-train`` entry end to end: train a tiny recipe with offline W&B, then export."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.training.helpers import PYTHON, REPO, cli_env
from yue_train.cli.train import main
from yue_train.training.logger import read_metrics


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "yue_train.cli.train", *args], env=cli_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_cli_trains_logs_offline_wandb_checkpoints_and_exports(tmp_path):
    run = tmp_path / "run"
    res = _cli(
        "recipe=tiny", f"trainer.run_dir={run}", "trainer.max_steps=4", "trainer.save_every=2", "trainer.eval_every=2",
        "trainer.keep_last=1", "data.demo_corpus.n_songs=20", "data.eval_fraction=0.2", "trainer.cpu_threads=1",
        "logging.wandb.enabled=true", "logging.wandb.mode=offline",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["status"] == "finished" and summary["step"] == 4
    assert (run / "config.yaml").read_text().startswith("recipe_name: tiny")
    assert sorted(p.name for p in (run / "demo_corpus").glob("*.tar"))  # generated corpus, real shards
    steps = [r["step"] for r in read_metrics(run) if "loss" in r]
    assert steps == [1, 2, 3, 4]
    assert any("eval/loss" in r for r in read_metrics(run))
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["latest", "step-4"]  # keep_last=1 pruned step-2
    out = tmp_path / "export"
    res = _cli("export", str(run / "checkpoints" / "latest"), str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16 and model.config.vocab_size == 83_968


def test_cli_help_lists_recipes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "lora_s1", "full_s1", "train_s2", "tiny"):
        assert name in out
