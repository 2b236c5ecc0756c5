"""Helpers for the training tests: real shards in tmp dirs, composed configs, the CLI as a subprocess (the tiny
models are in :mod:`tests.tiny_models`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from yue_train.data.shards import ShardWriter
from yue_train.format.document import Document
from yue_train.format.roles import Role

REPO = Path(__file__).resolve().parents[2]
# Tiny models: one intra-op thread is several times faster than two on a shared 2-core machine.
torch.set_num_threads(1)


def write_random_shards(
    out: Path,
    n_docs: int,
    vocab: int = 512,
    seed: int = 0,
    lengths: tuple[int, int] = (20, 200),
    docs_per_shard: int = 50,
) -> Path:
    """Documents of uniformly random tokens (roles alternate vocal/inst) written with the real ShardWriter."""
    rng = np.random.default_rng(seed)
    with ShardWriter(out, prefix="rand", max_docs=docs_per_shard) as w:
        for i in range(n_docs):
            n = int(rng.integers(*lengths))
            roles = np.where(np.arange(n) % 2 == 0, Role.VOCAL, Role.INST)
            w.write(Document(rng.integers(0, vocab, n), roles, {"id": f"rand-{i}", "mode": "test"}))
    return out


def write_copy_shards(out: Path, n_docs: int, vocab: int = 512, seed: int = 0, period: int = 4) -> Path:
    """Learnable documents: a random motif of ``period`` tokens repeated (the control for the leakage test)."""
    rng = np.random.default_rng(seed)
    with ShardWriter(out, prefix="copy", max_docs=50) as w:
        for i in range(n_docs):
            n = int(rng.integers(40, 200))
            ids = np.tile(rng.integers(0, vocab, period), n // period + 1)[:n]
            w.write(Document(ids, np.full(n, Role.VOCAL), {"id": f"copy-{i}", "mode": "test"}))
    return out


def compose(*overrides: str):
    from yue_train.config.compose import compose_config

    return compose_config(list(overrides))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["WANDB_MODE"] = "offline"  # never the network, whatever a config says
    env["WANDB_SILENT"] = "true"
    env["OMP_NUM_THREADS"] = "1"
    return env


PYTHON = sys.executable


def start_training(args: list[str], merge_stderr: bool = False, **env: str) -> subprocess.Popen:
    """``python -m yue_train.cli.train ARGS`` as a user runs it, with pipes for stdout and stderr."""
    stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
    return subprocess.Popen([PYTHON, "-m", "yue_train.cli.train", *args], env={**cli_env(), **env},
                            stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip


def signal_after_steps(proc: subprocess.Popen, run_dir: Path, sig: int, steps: int = 3) -> tuple[str, str]:
    """Send ``sig`` once ``run_dir`` has logged ``steps`` metric rows; (stdout, stderr) after it exits."""
    from yue_train.training.logger import read_metrics

    try:
        deadline = time.monotonic() + 120
        while len(read_metrics(run_dir)) < steps:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, err or ""


def random_run_overrides(
    shards: Path, run_dir: Path, *extra: str, max_steps: int, save_every: int, warmup_steps: int = 2
) -> list[str]:
    """A ``tiny_random`` run over ``shards`` into ``run_dir``: the overrides the checkpoint and resume tests share."""
    return [
        "recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}",
        f"trainer.max_steps={max_steps}", f"trainer.save_every={save_every}", "data.shuffle_buffer=16",
        f"optim.warmup_steps={warmup_steps}", "trainer.cpu_threads=1", *extra,
    ]  # fmt: skip
