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
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import built_once
from tests.training.helpers import PYTHON, cli_env, write_copy_shards
from yue_train.training.checkpointing.layout import TRAINER_STATE
from yue_train.training.logger import read_metrics
from yue_train.training.strategies import DistributedConfigError, init_process_group

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
TORCHRUN = [PYTHON, "-m", "torch.distributed.run", "--standalone"]
STEPS = 8
GLOBAL_BATCH = 4  # rows: 1 process x 4 accumulated micro-batches, or 2 processes x 2
TOLERANCE = 2e-5  # fp32; summation order differs between 1 and 2 processes


@pytest.fixture(scope="module")
def copy_shards(tmp_path_factory) -> Path:
    # Learnable documents: the loss falls step by step, so any change of data or update shows in it. One
    # folder for every test process: the shared runs below record its path, and resuming them checks it.
    return built_once(tmp_path_factory, "copy_shards", lambda out: write_copy_shards(out, n_docs=400))


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


# The shared straight runs keep a checkpoint every 2 steps: the resume tests start from their step 2.
EVERY_CHECKPOINT = ("trainer.save_every=2", "trainer.keep_last=0")


def _shared_run(tmp_path_factory, name: str, overrides: Callable[[Path], list[str]], nproc: int) -> Path:
    """A run trained once per test session (:func:`tests.conftest.built_once`) and then only read; a test
    that trains on from it takes a copy."""
    return built_once(tmp_path_factory, name, lambda folder: _run(overrides(folder / "run"), nproc=nproc)) / "run"


@pytest.fixture(scope="module")
def reference_run(copy_shards, tmp_path_factory) -> Path:
    """One process, global batch 4 as 4 accumulated micro-batches."""
    return _shared_run(
        tmp_path_factory, "reference_run", lambda run: _overrides(copy_shards, run, *EVERY_CHECKPOINT), 1
    )


@pytest.fixture(scope="module")
def two_process_run(copy_shards, tmp_path_factory) -> Callable[[str], Path]:
    """``two_process_run(strategy)``: the 2-process run under ``strategy`` (ddp or fsdp2) with the reference's
    settings, trained on first use."""
    return lambda strategy: _shared_run(
        tmp_path_factory,
        f"two_process_{strategy}",
        lambda run: _overrides(copy_shards, run, f"distributed={strategy}", *EVERY_CHECKPOINT),
        2,
    )


@pytest.fixture(scope="module")
def reference(reference_run) -> tuple[dict[int, float], dict[int, int], dict[int, float]]:
    return _metrics(reference_run)


LORA = ("lora=qkvo", "lora.r=4", "lora.dropout=0.0")


@pytest.fixture(scope="module")
def lora_reference(copy_shards, tmp_path_factory) -> Path:
    """The one-process LoRA run the sharded LoRA runs are compared with."""
    return _shared_run(tmp_path_factory, "lora_reference", lambda run: _overrides(copy_shards, run, *LORA), 1)


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


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])  # DeepSpeed: test_deepspeed_* below
def test_two_processes_match_one_process(strategy, two_process_run, reference):
    run = two_process_run(strategy)
    _assert_same(_metrics(run), reference, strategy)
    state = (run / "checkpoints" / "latest" / TRAINER_STATE).read_text()
    assert '"world_size": 2' in state and '"grad_accum": 2' in state


def test_single_strategy_refuses_several_processes(monkeypatch):
    """torchrun with several processes but distributed=single: one clear line, before any work."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedConfigError, match="launched with 2 processes but distributed=single; choose"):
        init_process_group("single", "cpu")


@pytest.mark.parametrize(
    ("first", "second"),
    [((2, "ddp"), (1, "single")), ((1, "single"), (2, "fsdp2")), ((2, "fsdp2"), (1, "fsdp2"))],
)
def test_resume_under_another_world_size_keeps_data_position(
    first, second, copy_shards, reference, reference_run, two_process_run, tmp_path
):
    """The first steps under one world size, the rest under the other: the same losses as straight through.
    The model and optimizer state moves through DCP shards (one file per process, no gather), resharded
    on load. The first leg is a copy of the straight run under ``first`` (the equivalence tests' runs)."""
    run = tmp_path / "run"
    half = STEPS // 2
    shutil.copytree(reference_run if first[0] == 1 else two_process_run(first[1]), run, symlinks=True)
    dcp = run / "checkpoints" / f"step-{half}" / "dcp"
    shards = sorted(p.name for p in dcp.glob("*.distcp"))
    assert shards == [f"__{r}_0.distcp" for r in range(first[0])], shards
    if first[1] == "fsdp2":  # each process wrote its half of the state
        sizes = [p.stat().st_size for p in sorted(dcp.glob("*.distcp"))]
        assert max(sizes) < 0.7 * sum(sizes), sizes
    # Resume from the step-2 checkpoint, which holds DCP state only (no Hugging Face weights).
    earlier = run / "checkpoints" / "step-2"
    assert not (earlier / "model").exists() and (earlier / "dcp" / ".metadata").is_file()
    for later in sorted((run / "checkpoints").glob("step-[3-9]*")):
        shutil.rmtree(later)
    half = 2
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


def _two_process_deepspeed_run(shards: Path, run: Path, *extra: str) -> Path:
    """All steps under 2 processes with a checkpoint half way; returns that checkpoint, which holds only
    DeepSpeed's files (whole weights are written at the end of the phase, not on every save)."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")
    half = STEPS // 2
    _run(_overrides(shards, run, *extra, f"trainer.save_every={half}"), nproc=2)
    ckpt = run / "checkpoints" / f"step-{half}"
    assert (ckpt / "deepspeed" / "state").is_dir()
    assert not (ckpt / "model").exists() and not (ckpt / "adapter").exists()  # no gather onto rank 0
    assert '"world_size": 2' in (ckpt / TRAINER_STATE).read_text()
    final = run / "checkpoints" / f"step-{STEPS}"
    assert (final / "model" / "config.json").exists() or (final / "adapter" / "adapter_config.json").exists()
    return ckpt


def _resume(shards: Path, run: Path, ckpt: Path, nproc: int, *extra: str) -> None:
    _run(_overrides(shards, run, *extra, f"trainer.resume={ckpt}"), nproc=nproc)
    assert not list((run / "checkpoints").glob(".universal-*"))  # the converted form is removed once loaded


def _export_deepspeed_files(ckpt: Path, tmp: Path) -> dict:
    """``yue-train export`` of ``ckpt`` as it is before the end of its phase (its DeepSpeed files only)."""
    from transformers import AutoModelForCausalLM

    from yue_train.cli.train import main as train_cli

    only = tmp / "deepspeed_only"
    shutil.copytree(ckpt, only, ignore=shutil.ignore_patterns("model", "adapter"))
    assert train_cli(["export", str(only), str(tmp / "export"), "--dtype", "float32"]) == 0
    return AutoModelForCausalLM.from_pretrained(tmp / "export").state_dict()


def _assert_weights_close(got: dict, want: dict, what: str, tol: float = 1e-5) -> None:
    assert got.keys() == want.keys(), what
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    assert worst <= tol, f"{what}: weights differ by {worst}"


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_matches_one_process_resumes_under_any_world_size_and_exports(
    stage, copy_shards, reference, reference_run, tmp_path
):
    """2 processes = 1 process; the half-way checkpoint (DeepSpeed files only) resumes under 2 processes
    (DeepSpeed's own load) and under 1 (its universal checkpoint) with the straight run's losses; its
    final checkpoint exports from DeepSpeed's files to the weights the trainer gathered."""
    from transformers import AutoModelForCausalLM

    strategy = f"distributed=deepspeed_{stage}"
    run = tmp_path / "run"
    ckpt = _two_process_deepspeed_run(copy_shards, run, strategy)
    _assert_same(_metrics(run), reference, stage)

    final = run / "checkpoints" / f"step-{STEPS}"
    gathered = AutoModelForCausalLM.from_pretrained(final / "model").state_dict()
    _assert_weights_close(_export_deepspeed_files(final, tmp_path), gathered, f"{stage} export")
    straight = AutoModelForCausalLM.from_pretrained(reference_run / "checkpoints" / "latest" / "model").state_dict()
    _assert_weights_close(gathered, straight, f"{stage} vs one process", tol=1e-4)

    if stage == "zero3":  # the same world size: DeepSpeed's own partitioned load (ZeRO-2: one run is enough)
        again = tmp_path / "again"
        shutil.copytree(run, again, symlinks=True)
        _resume(copy_shards, again, again / ckpt.relative_to(run), 2, strategy)
        _assert_same(_metrics(again), reference, f"{stage} 2 -> 2 processes")
    _resume(copy_shards, run, ckpt, 1, strategy)
    _assert_same(_metrics(run), reference, f"{stage} 2 -> 1 process (universal checkpoint)")


def test_deepspeed_lora_resumes_under_one_process_and_exports(copy_shards, lora_reference, tmp_path):
    """LoRA under ZeRO-2: DeepSpeed's files hold the adapter only (the base is rebuilt on resume);
    2 -> 1 processes through the universal checkpoint; export merges the adapter into its base."""
    from yue_train.training.checkpointing.hf_export import merged_model

    strategy = "distributed=deepspeed_zero2"
    run = tmp_path / "run"
    ckpt = _two_process_deepspeed_run(copy_shards, run, strategy, *LORA)
    ref = _metrics(lora_reference)
    _assert_same(_metrics(run), ref, "zero2 + LoRA")
    final = run / "checkpoints" / f"step-{STEPS}"
    want = merged_model(final).state_dict()
    _assert_weights_close(_export_deepspeed_files(final, tmp_path), want, "LoRA export")
    _resume(copy_shards, run, ckpt, 1, strategy, *LORA)
    _assert_same(_metrics(run), ref, "zero2 + LoRA 2 -> 1 process")


def test_lora_under_fsdp2_matches_one_process(copy_shards, lora_reference, tmp_path):
    """LoRA adapters on a sharded base: the same steps as one process, and a PEFT adapter as checkpoint."""
    ref, run = lora_reference, tmp_path / "run"
    _run(_overrides(copy_shards, run, *LORA, "distributed=fsdp2"), nproc=2)
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
                    *%r, "trainer.resume=none", "data.batch_size=1")).setup()
weight = unwrap(t.strategy.lm).model.norm.weight
norm = weight.to_local() if hasattr(weight, "to_local") else weight.data  # FSDP2: this process's shard

def local(p):
    return (p.to_local() if hasattr(p, "to_local") else p).detach().clone()

params = t.strategy.trainable_parameters()
t.train_step()
before = [local(p) for p in params]
saved = norm[0].item()
with torch.no_grad():
    norm[0] = float("nan")
m = t.train_step()
with torch.no_grad():
    norm[0] = saved
assert math.isnan(m["loss"]) and m["skipped_steps"] == 1, m
changed = [i for i, (a, p) in enumerate(zip(before, params)) if not torch.equal(a, local(p))]
assert changed == [], changed
assert math.isfinite(t.train_step()["loss"])
print("OK")
"""


@pytest.mark.parametrize("strategy", ["fsdp2", "deepspeed_zero2", "deepspeed_zero2 distributed.cpu_offload=true"])
def test_non_finite_step_is_skipped_by_every_engine(strategy, copy_shards, tmp_path):
    """A NaN loss leaves the weights as they were under FSDP2 and DeepSpeed too (one-process group);
    DeepSpeed with its optimizer state offloaded to CPU memory trains with our torch AdamW as well."""
    if strategy.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")
    name, *extra = strategy.split()
    script = NAN_STEP_SCRIPT % (copy_shards, tmp_path / "run", [f"distributed={name}", *extra])
    proc = subprocess.run([PYTHON, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-4000:]
