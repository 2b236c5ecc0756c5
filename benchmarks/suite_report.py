"""benchmarks/gpu_suite.sh's JSON: gathers what each finished step left in the work folder into one report.

  python benchmarks/suite_report.py WORK OUT MODE [--final]

gpu_suite.sh calls it after every step, so a suite cut short (a lost reservation, a hung step) still leaves
every figure measured so far; the file is replaced atomically. Per step: exit status, seconds, whether its
time cap ended it, the benchmark's own figures and, when it failed, the end of its stderr. When
benchmarks/estimate_memory.py ran, its estimate stands beside the measured peak of the same model, mode and
length. ``--final`` also prints a summary and exits 1 when any step failed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# step -> (estimator model, estimator mode, the row of the step's result that is measured against it)
ESTIMATED = {"lora_7b": ("s1_7b", "lora", "ours"), "full_1b": ("s2_1b", "full", "full/single")}


def machine() -> str:
    """The first GPU's name from nvidia-smi (no torch import: this runs after every step), else the CPU."""
    if shutil.which("nvidia-smi"):
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip().splitlines()[0]
    return f"cpu ({platform.machine()})"


def step_result(work: Path, name: str) -> dict | None:
    result = work / f"{name}.json"
    if result.exists():
        try:
            return json.loads(result.read_text())
        except json.JSONDecodeError:
            return None
    out = work / f"{name}.out"
    if name == "codec" and out.exists():
        lines = [line for line in out.read_text().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    junit = work / f"{name}.xml"
    if junit.exists():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return None


def estimate_rows(work: Path) -> list[dict]:
    path = work / "estimate.json"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    rows = data.get("rows", []) if isinstance(data, dict) else data
    return [r for r in rows if isinstance(r, dict)]


def beside_estimate(name: str, entry: dict, rows: list[dict]) -> None:
    """Puts the estimator's peak for the step's model/mode/length beside the measured peak (both GiB)."""
    if name not in ESTIMATED or not isinstance(entry.get("result"), dict):
        return
    model, mode, measured_mode = ESTIMATED[name]
    measured = next((r for r in entry["result"].get("rows", []) if r.get("mode") == measured_mode), None)
    if measured is None:
        return
    seq_len = measured.get("seq_len")
    same = [r for r in rows if r.get("model") == model and r.get("mode") == mode and r.get("seq_len") == seq_len]
    # the measured step checkpoints activations: the estimate made with checkpointing, where both are there
    estimate = next((r for r in same if r.get("gradient_checkpointing", True)), None)
    if estimate is not None:
        entry["estimate_vs_measured"] = {
            "seq_len": seq_len,
            "estimated_peak_gib": estimate.get("peak_gib"),
            "measured_peak_gib": measured.get("peak_gib"),
        }


def gather(work: Path, mode: str) -> dict:
    rows = estimate_rows(work)
    steps = {}
    order = work / "steps.order"  # one name a line, appended by each step as it ends
    names = list(dict.fromkeys(order.read_text().split())) if order.exists() else []
    for name in names:
        rc, seconds = (work / f"{name}.status").read_text().split()
        if rc == "skipped":
            steps[name] = {"rc": None, "skipped": "the suite's time budget was spent", "seconds": 0.0}
            continue
        entry = {"rc": int(rc), "seconds": round(float(seconds), 1), "timed_out": rc in ("124", "137")}
        result = step_result(work, name)
        if result is not None:
            entry["result"] = result
        if entry["rc"] != 0 and (work / f"{name}.err").exists():
            entry["stderr_tail"] = (work / f"{name}.err").read_text()[-1500:]
        beside_estimate(name, entry, rows)
        steps[name] = entry
    report = {"machine": machine(), "mode": mode, "cpu_smoke": mode == "cpu-smoke", "steps": steps}
    if rows:
        report["estimate"] = rows
    return report


def main(argv: list[str]) -> int:
    work, out, mode = Path(argv[0]), Path(argv[1]), argv[2]
    report = gather(work, mode)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # the estimate step reports concurrently
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, out)
    if "--final" not in argv:
        return 0
    steps = report["steps"]
    print(json.dumps({n: {"rc": s["rc"], "seconds": s["seconds"]} for n, s in steps.items()}))
    for name, entry in steps.items():
        pair = entry.get("estimate_vs_measured")
        if pair:
            print(f"{name} at {pair['seq_len']} tokens: estimated peak {pair['estimated_peak_gib']} GiB, "
                  f"measured {pair['measured_peak_gib']} GiB")  # fmt: skip
    return 0 if all(s["rc"] == 0 for s in steps.values() if not s.get("skipped")) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
