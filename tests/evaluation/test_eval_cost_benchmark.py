"""benchmarks/eval_cost.py runs reduced (one short song, tiny random checkpoints) and prints every metric."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.evaluation.test_registry import AUDIO_METRICS

pytestmark = pytest.mark.slow


def test_eval_cost_prints_cpu_seconds_per_minute_for_every_metric():
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "eval_cost.py"),
        "--seconds",
        "4",
        "--songs",
        "1",
        "--size",
        "tiny",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["metric"] for r in rows) == AUDIO_METRICS
    assert all(r["cpu_s_per_min"] > 0 for r in rows)
    assert {r["metric"]: r["minutes"] for r in rows}["fad"] == pytest.approx(2 * 4 / 60, abs=1e-3)
    assert "CPU s / min" in proc.stdout
