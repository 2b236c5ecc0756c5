"""benchmarks/suite_report.py: the GPU suite's JSON from the files its steps leave, rewritten after each step."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("suite_report", REPO / "benchmarks" / "suite_report.py")
suite_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite_report)


def finish(work: Path, name: str, status: str, result: dict | None = None, err: str = "") -> None:
    if result is not None:
        (work / f"{name}.json").write_text(json.dumps(result))
    (work / f"{name}.err").write_text(err)
    (work / f"{name}.status").write_text(status)
    with open(work / "steps.order", "a") as order:
        order.write(name + "\n")


def test_each_step_lands_as_it_finishes_with_the_estimate_beside_the_measured_peak(tmp_path):
    work, out = tmp_path / "work", tmp_path / "suite.json"
    work.mkdir()
    lora = {"rows": [{"mode": "ours", "seq_len": 8192, "peak_gib": 17.2}, {"mode": "official", "seq_len": 8192}]}
    finish(work, "lora_7b", "0 41.25", lora)
    assert suite_report.main([str(work), str(out), "full"]) == 0
    first = json.loads(out.read_text())
    assert first["mode"] == "full" and list(first["steps"]) == ["lora_7b"]
    assert first["steps"]["lora_7b"] == {"rc": 0, "seconds": 41.2, "timed_out": False, "result": lora}

    rows = [
        {"model": "s1_7b", "mode": "lora", "seq_len": 16384, "peak_gib": 21.0},
        {"model": "s1_7b", "mode": "lora", "seq_len": 8192, "peak_gib": 16.5},
    ]
    (work / "estimate.json").write_text(json.dumps({"rows": rows}))
    finish(work, "music_30s", "124 140.0", err="Traceback ...\nKeyboardInterrupt\n")
    finish(work, "full_1b", "skipped 0")
    assert suite_report.main([str(work), str(out), "full", "--final"]) == 1  # a step failed
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert list(steps) == ["lora_7b", "music_30s", "full_1b"]
    assert steps["lora_7b"]["estimate_vs_measured"] == {
        "seq_len": 8192,
        "estimated_peak_gib": 16.5,
        "measured_peak_gib": 17.2,
    }
    assert steps["music_30s"]["timed_out"] and steps["music_30s"]["stderr_tail"].endswith("KeyboardInterrupt\n")
    assert steps["full_1b"]["rc"] is None and "budget" in steps["full_1b"]["skipped"]
    assert report["estimate"] == rows
    assert not list(tmp_path.glob(".suite.json.*"))  # the temporary file was moved into place
