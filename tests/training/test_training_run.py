"""Training runs in-process: non-finite loss handling, LoRA variants and export, stage 2, evaluation, SIGTERM."""

from __future__ import annotations

import math
import signal

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.training.helpers import compose, signal_after_steps, start_training
from yue_train.cli.train import main
from yue_train.training.checkpointing.publish import latest_checkpoint
from yue_train.training.forward import unwrap
from yue_train.training.logger import read_metrics
from yue_train.training.trainer import Trainer, TrainingError, run_training


def _ov(shards, run_dir, *extra):
    return ("recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}", *extra)


def test_non_finite_loss_is_skipped_counted_and_bounded(random_shards, tmp_path):
    t = Trainer(compose(*_ov(random_shards, tmp_path / "r", "trainer.max_bad_steps=1", "trainer.resume=none"))).setup()
    norm = unwrap(t.strategy.lm).model.norm.weight
    params, optimizer = t.strategy.trainable_parameters(), t.strategy.optimizer
    t.train_step()
    before = [p.detach().clone() for p in params]
    exp_avg_before = optimizer.state[params[0]]["exp_avg"].clone()
    saved = norm.data[0].item()
    norm.data[0] = float("nan")  # every hidden state becomes NaN
    m = t.train_step()
    assert math.isnan(m["loss"]) and m["skipped_steps"] == 1 and t.skipped_steps == 1
    norm.data[0] = saved
    for a, b in zip(before, params, strict=True):
        assert torch.equal(a, b)  # the bad step changed nothing
    assert torch.equal(exp_avg_before, optimizer.state[params[0]]["exp_avg"])
    assert math.isfinite(t.train_step()["loss"])  # training goes on
    norm.data[0] = float("inf")
    with pytest.raises(TrainingError, match="2 steps with non-finite loss"):
        t.train_step()


@pytest.mark.parametrize(("variant", "targets"), [("qkvo", {"q_proj", "k_proj", "v_proj", "o_proj"}),
                                                    ("qkvo_mlp", {"q_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})])  # fmt: skip
def test_lora_variants_train_only_adapters(random_shards, tmp_path, variant, targets):
    t = Trainer(compose(*_ov(random_shards, tmp_path / "r", f"lora={variant}", "lora.r=4"))).setup()
    names = {n for n, p in t.strategy.lm.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert targets <= {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}


def test_export_merges_adapter_into_base(random_shards, tmp_path):
    run = tmp_path / "run"
    run_training(compose(*_ov(random_shards, run, "lora=qkvo", "lora.r=4", "trainer.max_steps=5", "optim.lr=1e-2")))
    ckpt = latest_checkpoint(run)
    out = tmp_path / "merged"
    assert main(["export", str(ckpt), str(out), "--dtype", "float32"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.config.use_cache and not any("lora" in k for k in merged.state_dict())
    base = AutoModelForCausalLM.from_pretrained(run / "base_model")
    ids = torch.randint(0, 512, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, ckpt / "adapter")(ids).logits
        merged_logits = merged(ids).logits
    assert (adapted - base_logits).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(merged_logits, adapted, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_stage2_run_reports_codebooks_and_evaluates(tmp_path):
    run = tmp_path / "s2"
    summary = run_training(compose("recipe=tiny_s2", f"trainer.run_dir={run}", "trainer.max_steps=3",
                                   "trainer.eval_every=2", "trainer.cpu_threads=1", "data.demo_corpus.n_songs=24",
                                   "data.eval_fraction=0.25"))  # fmt: skip
    records = read_metrics(run)
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    reported = set().union(*train)  # a 256-token row may hold only a chunk's condition block
    assert {f"loss/s2_cb{k}" for k in range(8)} | {"acc/s2_cb7", "loss/s2_condition"} <= reported
    assert {"lr", "grad_norm", "tokens_per_s", "tokens"} <= set(train[0])
    evals = [r for r in records if "eval/loss" in r]
    assert [r["step"] for r in evals] == [2, 3] and "eval/ppl" in evals[0] and "eval/loss/s2_condition" in evals[0]
    assert summary["eval"]["eval/ppl"] == pytest.approx(math.exp(summary["eval"]["eval/loss"]))


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(random_shards, tmp_path):
    run = tmp_path / "run"
    args = [*_ov(random_shards, run, "trainer.max_steps=100000", "trainer.save_every=0", "trainer.cpu_threads=1")]
    proc = start_training(args, merge_stderr=True)
    out, _ = signal_after_steps(proc, run, signal.SIGTERM)
    assert proc.returncode == 0, out
    assert "stopped by signal" in out
    last = read_metrics(run)[-1]["step"]
    assert latest_checkpoint(run).name == f"step-{last}"
