"""Data-parallel training under torchrun on CPU (gloo): DDP, FSDP2 and DeepSpeed ZeRO take the same steps
as one process with the same global batch, and checkpoints move between world sizes.

Every run here is the real CLI (``torchrun -m yue_train.cli.train``). The comparison is per-step loss
from ``metrics.jsonl``: if the processes trained on the wrong data (each on everything, or on an
overlapping share; the HF-Trainer-on-CPU class of bug) or the gradients were averaged wrongly, the losses
part from the single-process run within a few steps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.training.helpers import PYTHON, cli_env, write_copy_shards
from yue_train.training.engines import DistributedConfigError, init_process_group
from yue_train.training.logger import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
TORCHRUN = [PYTHON, "-m", "torch.distributed.run", "--standalone"]
STEPS = 8
GLOBAL_BATCH = 4  # rows: 1 process x 4 accumulated micro-batches, or 2 processes x 2
TOLERANCE = 2e-5  # fp32; summation order differs between 1 and 2 processes


@pytest.fixture(scope="module")
def copy_shards(tmp_path_factory) -> Path:
    # Learnable documents: the loss falls step by step, so any change of data or update shows in it.
    return write_copy_shards(tmp_path_factory.mktemp("copy_shards"), n_docs=400)


def _overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}",
        "data.batch_size=1", f"trainer.global_batch_size={GLOBAL_BATCH}", f"trainer.max_steps={STEPS}",
        "optim.lr=3e-3", "optim.warmup_steps=2", "optim.schedule=constant", "trainer.cpu_threads=1", "data.shuffle_buffer=8",
        "data.eval_fraction=0.1", "trainer.eval_every=4", *extra,
    ]  # fmt: skip


def _run(overrides: list[str], nproc: int, timeout: float = 600) -> str:
    cmd = [*TORCHRUN, f"--nproc_per_node={nproc}", "-m", "yue_train.cli.train", *overrides]
    if nproc == 1:
        cmd = [PYTHON, "-m", "yue_train.cli.train", *overrides]
    proc = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    # stdout is the run's JSON summary alone (DeepSpeed's op-build prints go to stderr), under every engine
    assert json.loads(proc.stdout)["status"] == "finished", proc.stdout
    return proc.stdout


def _metrics(run_dir: Path) -> tuple[dict[int, float], dict[int, int], dict[int, float]]:
    rows = read_metrics(run_dir)
    loss = {r["step"]: r["loss"] for r in rows if "loss" in r}
    tokens = {r["step"]: r["tokens"] for r in rows if "tokens" in r}
    evals = {r["step"]: r["eval/loss"] for r in rows if "eval/loss" in r}
    return loss, tokens, evals


@pytest.fixture(scope="module")
def reference(copy_shards, tmp_path_factory) -> tuple[dict[int, float], dict[int, int], dict[int, float]]:
    """One process, global batch 4 as 4 accumulated micro-batches."""
    run = tmp_path_factory.mktemp("ref") / "run"
    _run(_overrides(copy_shards, run), nproc=1)
    return _metrics(run)


def _assert_same(got, want, what: str) -> None:
    loss, tokens, evals = got
    ref_loss, ref_tokens, ref_evals = want
    assert sorted(loss) == list(range(1, STEPS + 1)), f"{what}: steps {sorted(loss)}"
    assert tokens == ref_tokens, f"{what}: label tokens per step differ from one process: {tokens} vs {ref_tokens}"
    for step, value in ref_loss.items():
        assert abs(loss[step] - value) <= TOLERANCE * max(1.0, abs(value)), (
            f"{what}: step {step} loss {loss[step]:.7f} vs one process {value:.7f}"
        )
    # Steps differ from each other by far more than the tolerance: a wrong batch or update would show.
    assert max(ref_loss.values()) - min(ref_loss.values()) > 1000 * TOLERANCE
    assert evals.keys() == ref_evals.keys()
    for step, value in ref_evals.items():
        assert abs(evals[step] - value) <= TOLERANCE * max(1.0, abs(value)), f"{what}: eval at step {step}"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "deepspeed_zero2"])
def test_two_processes_match_one_process(strategy, copy_shards, reference, tmp_path):
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")
    run = tmp_path / "run"
    _run(_overrides(copy_shards, run, f"distributed={strategy}"), nproc=2)
    _assert_same(_metrics(run), reference, strategy)
    state = (run / "checkpoints" / "latest" / "trainer_state.json").read_text()
    assert '"world_size": 2' in state and '"grad_accum": 2' in state


def test_single_strategy_refuses_several_processes(monkeypatch):
    """torchrun with several processes but distributed=single: one clear line, before any work."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedConfigError, match="launched with 2 processes but distributed=single; choose"):
        init_process_group("single", "cpu")


@pytest.mark.parametrize(("first", "second"), [((2, "ddp"), (1, "single")), ((1, "single"), (2, "fsdp2"))])
def test_resume_under_another_world_size_keeps_data_position(first, second, copy_shards, reference, tmp_path):
    """Half the steps under one world size, the rest under the other: the same losses as straight through."""
    run = tmp_path / "run"
    half = STEPS // 2
    _run(_overrides(copy_shards, run, f"distributed={first[1]}", f"trainer.max_steps={half}"), nproc=first[0])
    assert (run / "checkpoints" / f"step-{half}").is_dir()
    # The second leg's schedule must be the straight run's: same max_steps in the LR lambda.
    _run(_overrides(copy_shards, run, f"distributed={second[1]}"), nproc=second[0])
    loss, tokens, _ = _metrics(run)
    ref_loss, ref_tokens, _ = reference
    assert sorted(loss) == list(range(1, STEPS + 1))
    assert tokens == ref_tokens
    for step in range(half + 1, STEPS + 1):
        assert abs(loss[step] - ref_loss[step]) <= TOLERANCE * max(1.0, abs(ref_loss[step])), (
            f"{first}->{second}: step {step} loss {loss[step]:.7f} vs straight {ref_loss[step]:.7f}"
        )


def test_deepspeed_zero3_trains_and_resumes_under_the_same_world_size(copy_shards, reference, tmp_path):
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")
    run = tmp_path / "run"
    half = STEPS // 2
    _run(_overrides(copy_shards, run, "distributed=deepspeed_zero3", f"trainer.max_steps={half}"), nproc=2)
    _run(_overrides(copy_shards, run, "distributed=deepspeed_zero3"), nproc=2)
    _assert_same(_metrics(run), reference, "deepspeed_zero3 with resume")
    # Its checkpoints hold whole Hugging Face weights, like every other strategy's.
    assert (run / "checkpoints" / "latest" / "model" / "config.json").exists()
    shutil.rmtree(run)


def test_lora_under_fsdp2_matches_one_process(copy_shards, tmp_path):
    """LoRA adapters on a sharded base: the same steps as one process, and a PEFT adapter as checkpoint."""
    lora = ("lora=qkvo", "lora.r=4", "lora.dropout=0.0")
    ref, run = tmp_path / "ref", tmp_path / "run"
    _run(_overrides(copy_shards, ref, *lora), nproc=1)
    _run(_overrides(copy_shards, run, *lora, "distributed=fsdp2"), nproc=2)
    _assert_same(_metrics(run), _metrics(ref), "fsdp2 + LoRA")
    adapter = run / "checkpoints" / "latest" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    from safetensors.torch import load_file

    want, got = (
        load_file(ref / "checkpoints" / "latest" / "adapter" / "adapter_model.safetensors"),
        load_file(adapter / "adapter_model.safetensors"),
    )
    assert want.keys() == got.keys() and all("lora_" in k for k in got)
    for k, v in want.items():
        assert got[k].shape == v.shape and (got[k] - v).abs().max() < 1e-4, k


NAN_STEP_SCRIPT = """
import math, sys, torch
from tests.training.helpers import compose
from yue_train.training.forward import unwrap
from yue_train.training.trainer import Trainer
t = Trainer(compose("recipe=tiny_random", "data.train=[{path: '%s'}]", "trainer.run_dir=%s",
                    "distributed=%s", "trainer.resume=none", "data.batch_size=1"))
weight = unwrap(t.model).model.norm.weight
norm = weight.to_local() if hasattr(weight, "to_local") else weight.data  # FSDP2: this process's shard

def local(p):
    return (p.to_local() if hasattr(p, "to_local") else p).detach().clone()

t.train_step()
before = [local(p) for p in t.params]
saved = norm[0].item()
with torch.no_grad():
    norm[0] = float("nan")
m = t.train_step()
with torch.no_grad():
    norm[0] = saved
assert math.isnan(m["loss"]) and m["skipped_steps"] == 1, m
changed = [i for i, (a, p) in enumerate(zip(before, t.params)) if not torch.equal(a, local(p))]
assert changed == [], changed
assert math.isfinite(t.train_step()["loss"])
print("OK")
"""


@pytest.mark.parametrize("strategy", ["fsdp2", "deepspeed_zero2"])
def test_non_finite_step_is_skipped_by_every_engine(strategy, copy_shards, tmp_path):
    """A NaN loss leaves the weights as they were under FSDP2 and DeepSpeed too (one-process group)."""
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")
    script = NAN_STEP_SCRIPT % (copy_shards, tmp_path / "run", strategy)
    proc = subprocess.run([PYTHON, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-4000:]
