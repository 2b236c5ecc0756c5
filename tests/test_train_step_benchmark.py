"""benchmarks/train_step.py runs on CPU (tiny model) in its modes, one process each, and prints its numbers."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "args", [["--modes", "ours,official,ours:chunked"], ["--full", "--loss-impl", "chunked", "--modes", "single,fsdp2"]]
)
def test_train_step_benchmark_prints_a_result_per_mode(args):
    cmd = [sys.executable, str(REPO / "benchmarks" / "train_step.py"), "--arch", "tiny_s1", "--seq-len", "64",
           "--steps", "1", "--warmup", "0", "--threads", "1", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    rows = [r for r in lines if "mode" in r]
    modes = args[-1].split(",")
    assert [r["mode"].split("/")[-1] for r in rows] == modes
    assert all(r["tokens_per_s"] > 0 and 10 < r["loss"] < 12 for r in rows)  # ~ln(83,968) at random init
    assert all(0.1 < r["peak_rss_gib"] < 20 and r["model_tflops"] >= 0 for r in rows)  # each its own process
    impls = [r.get("loss_impl") for r in rows]
    if "--full" in args:
        assert impls == ["chunked", "chunked"]
    else:
        assert impls == ["full", None, "chunked"]  # 64 tokens: full logits fit the budget
        assert set(lines[-1]["ours_vs_official"]) == {
            "ratio_tokens_per_s",
            "ratio_tokens_per_cpu_s",
            "ratio_peak_rss_gib",
        }
        assert abs(rows[0]["loss"] - rows[2]["loss"]) < 1e-3
