"""benchmarks/train_step.py runs on CPU (tiny model) in both of its modes and prints its numbers."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("args", [["--modes", "ours,official"], ["--full", "--modes", "single,fsdp2"]])
def test_train_step_benchmark_prints_a_result_per_mode(args):
    cmd = [sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--arch", "tiny_s1", "--seq-len", "64",
           "--steps", "1", "--warmup", "0", "--threads", "1", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    modes = args[-1].split(",")
    assert [r["mode"].split("/")[-1] for r in rows] == modes
    assert all(r["tokens_per_s"] > 0 and 10 < r["loss"] < 12 for r in rows)  # ~ln(83,968) at random init
