"""Exact resume after a SIGKILL, and checkpoints that survive a kill in the middle of being written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.helpers import PYTHON, cli_env, compose, random_run_overrides, start_training, write_random_shards
from yue_train.training.checkpointing.layout import MARKER, temp_folder
from yue_train.training.checkpointing.publish import FAULT_ENV, latest_checkpoint
from yue_train.training.logger import read_metrics
from yue_train.training.trainer import Trainer, run_training


def _overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return random_run_overrides(shards, run_dir, *extra, max_steps=20, save_every=10, warmup_steps=3)


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


def _start_and_kill(overrides: list[str], fault: str, wait_for: Path, timeout: float = 120) -> None:
    """Run the real CLI in a subprocess that pauses at ``fault``; SIGKILL it once ``wait_for`` exists."""
    env = {**cli_env(), FAULT_ENV: fault}
    proc = subprocess.Popen([PYTHON, "-m", "yue_train.cli.train", *overrides], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not wait_for.exists():
            if proc.poll() is not None:
                raise AssertionError(f"run ended before the kill point (rc {proc.returncode}):\n{proc.stdout.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("kill point not reached in time")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_resume_gives_identical_losses(random_shards, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_training(compose(*_overrides(random_shards, straight)))
    # Killed while paused right after publishing step-10 (steps 11+ not run yet).
    _start_and_kill(_overrides(random_shards, resumed), "after_save:10:300", resumed / "checkpoints" / "latest")
    assert latest_checkpoint(resumed).name == "step-10"
    assert max(_losses(resumed)) == 10
    summary = run_training(compose(*_overrides(random_shards, resumed, "trainer.resume=auto")))
    assert summary["step"] == 20
    a, b = _losses(straight), _losses(resumed)
    assert sorted(a) == list(range(1, 21)) == sorted(b)
    assert a == b  # exact equality: model, optimizer, scheduler, RNG and data position all restored


@pytest.mark.slow
def test_kill_during_checkpoint_write_keeps_previous_checkpoint(random_shards, tmp_path):
    run_dir = tmp_path / "run"
    ov = _overrides(random_shards, run_dir, "trainer.save_every=5")
    tmp_ckpt = temp_folder(run_dir, 10)
    _start_and_kill(ov, "during_save:10:300", tmp_ckpt / MARKER)  # step-10 fully written, not yet renamed
    assert tmp_ckpt.is_dir()
    assert latest_checkpoint(run_dir).name == "step-5"
    assert not (run_dir / "checkpoints" / "step-10").exists()
    trainer = Trainer(compose(*ov, "trainer.resume=auto")).setup()  # the previous checkpoint loads
    assert trainer.step == 5
    trainer.train()
    assert latest_checkpoint(run_dir).name == "step-20" and not tmp_ckpt.exists()


@pytest.mark.slow
def test_lora_adapter_resume_is_exact(random_shards, tmp_path):
    lora = ("lora=qkvo", "lora.r=4", "lora.dropout=0.1", "trainer.max_steps=6", "trainer.save_every=3")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_training(compose(*_overrides(random_shards, straight, *lora)))
    first = Trainer(compose(*_overrides(random_shards, resumed, *lora))).setup()
    for _ in range(3):
        first.train_step()
    first.save()
    first.close()  # the process "dies" here (its run-folder lock goes with it); only the checkpoint carries over
    del first
    run_training(compose(*_overrides(random_shards, resumed, *lora, "trainer.resume=auto")))
    a = _losses(straight)
    b = _losses(resumed)
    assert a[6] == b[6] and a[5] == b[5] and a[4] == b[4]  # steps after the resume (dropout RNG included)
    assert (resumed / "checkpoints" / "step-6" / "adapter" / "adapter_config.json").exists()


@pytest.mark.slow
def test_sigkill_resume_exactly_at_an_epoch_boundary(tmp_path):
    """The checkpoint lies at the last step of an epoch (the next step starts the next epoch, shard order and
    shuffle buffer drawn anew): the resumed run's losses equal the straight run's."""
    shards = write_random_shards(tmp_path / "shards", 24, docs_per_shard=5)
    probe = Trainer(compose(*random_run_overrides(shards, tmp_path / "probe", max_steps=16, save_every=0))).setup()
    epochs = []
    for _ in range(16):
        epochs.append(probe.data.state_dict()["sources"][0]["epoch"])
        probe.data.next_step()
    probe.close()
    k = next(i for i in range(1, 15) if epochs[i + 1] > epochs[i])  # step k+1 crosses into the next epoch
    ov = lambda run, *extra: random_run_overrides(shards, run, *extra, max_steps=16, save_every=k)  # noqa: E731
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_training(compose(*ov(straight)))
    _start_and_kill(ov(resumed), f"after_save:{k}:300", resumed / "checkpoints" / "latest")
    assert latest_checkpoint(resumed).name == f"step-{k}"
    assert max(_losses(resumed)) == k
    run_training(compose(*ov(resumed, "trainer.resume=auto")))
    assert _losses(straight) == _losses(resumed) and len(_losses(straight)) == 16


@pytest.mark.slow
def test_async_save_trains_on_during_the_write_and_a_kill_keeps_the_previous_checkpoint(random_shards, tmp_path):
    """``trainer.async_save``: the loop goes on while a checkpoint is written in the background; it is
    published only once written, so a SIGKILL during the write leaves the previous one as ``latest``."""
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    ov = ("trainer.save_every=5", "trainer.async_save=true")
    summary = run_training(compose(*_overrides(random_shards, straight, *ov)))
    assert [s["step"] for s in summary["checkpoint_saves"]] == [5, 10, 15, 20]
    assert all(s["blocking_s"] > 0 and s["bytes"] > 0 for s in summary["checkpoint_saves"])
    # step-10's background write pauses: steps 11-15 still train, then the step-15 save waits for it
    proc = start_training(_overrides(random_shards, run_dir, *ov), merge_stderr=True, **{FAULT_ENV: "dcp_write:10:300"})
    try:
        deadline = time.monotonic() + 120
        while max(_losses(run_dir), default=0) < 15:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        assert latest_checkpoint(run_dir).name == "step-5"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert latest_checkpoint(run_dir).name == "step-5"
    tmp_ckpt = temp_folder(run_dir, 10)
    assert tmp_ckpt.is_dir() and not (tmp_ckpt / MARKER).exists()
    assert not (run_dir / "checkpoints" / "step-10").exists()
    run_training(compose(*_overrides(random_shards, run_dir, *ov, "trainer.resume=auto")))
    assert _losses(run_dir) == _losses(straight)  # resumed at step 5, exactly the straight run's steps
    assert latest_checkpoint(run_dir).name == "step-20" and not tmp_ckpt.exists()
