"""benchmarks/gpu_suite.sh --cpu-smoke: the suite's CPU-runnable parts at tiny sizes, one JSON of results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_suite_cpu_smoke_writes_one_json(tmp_path):
    out = tmp_path / "suite.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--cpu-smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["cpu_smoke"] is True and report["machine"].startswith("cpu")
    steps = report["steps"]
    assert set(steps) == {"lora_7b", "full_1b", "music_30s", "codec"}
    assert all(s["rc"] == 0 and s["seconds"] > 0 for s in steps.values())
    lora = steps["lora_7b"]["result"]
    assert [r["mode"] for r in lora["rows"]] == ["ours", "official"]
    assert all(r["tokens_per_s"] > 0 and r["peak_rss_gib"] > 0 for r in lora["rows"])
    assert lora["rows"][0]["loss_impl"] == "full" and lora["ours_vs_official"]["ratio_tokens_per_s"] > 0
    assert steps["full_1b"]["result"]["rows"][0]["mode"] == "full/single"
    music = steps["music_30s"]["result"]
    assert music["stage1"]["fast"]["per_s"] > 0 and music["stage2"]["fast"]["per_s"] > 0
    assert steps["codec"]["result"]["encode_audio_s_per_wall_s"] > 0


def test_gpu_suite_refuses_an_unknown_option():
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--fast"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_suite.sh: unknown option --fast (use --out PATH, --cpu-smoke, --no-install, --peak-tflops N)"
    ]
