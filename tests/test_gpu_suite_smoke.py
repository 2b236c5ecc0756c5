"""benchmarks/gpu_suite.sh --cpu-smoke: the suite's CPU-runnable parts at tiny sizes, one JSON of results.

It is also the test of benchmarks/train_step.py (LoRA ours/official/chunked, full single/FSDP2),
benchmarks/generate.py and benchmarks/codec_throughput.py on CPU."""

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
    assert report["cpu_smoke"] is True and report["mode"] == "cpu-smoke" and report["machine"].startswith("cpu")
    steps = report["steps"]
    assert list(steps) == ["lora_7b", "music_30s", "full_1b", "codec"]  # the order of value
    assert all(s["rc"] == 0 and s["seconds"] > 0 for s in steps.values())
    # benchmarks/train_step.py: one process per mode, each row with its own peak memory
    lora, full = steps["lora_7b"]["result"], steps["full_1b"]["result"]
    assert [r["mode"] for r in lora["rows"]] == ["ours", "official", "ours:chunked"]
    assert [r["mode"] for r in full["rows"]] == ["full/single", "full/fsdp2"]
    for row in lora["rows"] + full["rows"]:
        assert row["tokens_per_s"] > 0 and 10 < row["loss"] < 12  # ~ln(83,968) at random init
        assert 0.1 < row["peak_rss_gib"] < 20 and row["model_tflops"] >= 0
    assert [r.get("loss_impl") for r in lora["rows"]] == ["full", None, "chunked"]  # 64 tokens: full logits fit
    assert [r.get("loss_impl") for r in full["rows"]] == ["chunked", "chunked"]
    assert abs(lora["rows"][0]["loss"] - lora["rows"][2]["loss"]) < 1e-3
    assert set(lora["ours_vs_official"]) == {"ratio_tokens_per_s", "ratio_tokens_per_cpu_s", "ratio_peak_rss_gib"}
    music = steps["music_30s"]["result"]
    assert music["stage1"]["fast"]["per_s"] > 0 and music["stage2"]["fast"]["per_s"] > 0
    assert steps["codec"]["result"]["encode_audio_s_per_wall_s"] > 0


def test_gpu_suite_refuses_an_unknown_option():
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--fast"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_suite.sh: unknown option --fast (use --out PATH, --quick, --cpu-smoke, --wheelhouse DIR, "
        "--peak-tflops N, --budget SECONDS)"
    ]
