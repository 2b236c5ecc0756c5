"""benchmarks/train_state.py --smoke: the four measurements come out of real torchrun workers with sane values.

The smoke sizes are far too small for the goals (a 140k-parameter model, a few hundred documents), so this
checks the plumbing and the counters, not pass/fail.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def test_smoke_run_reports_the_four_measurements(tmp_path):
    out = tmp_path / "state.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "train_state.py"), "--smoke", "--work", str(tmp_path / "w"),
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result
    assert result["corpus"]["documents"] >= 1000
    for key in ("resume", "reads", "save_memory", "async_save"):
        assert isinstance(result[key]["pass"], bool) and result[key]["goal"], key
    table = proc.stdout.splitlines()[:-1]
    for n in "1234":  # one verdict per measurement in the printed table
        assert any(line.startswith(n + " ") for line in table), table
    assert sum(("PASS" in line) or ("FAIL" in line) for line in table) == 4, table

    resume = result["resume"]
    early, late = resume["early"], resume["late"]
    assert early["step"] == 10 and late["step"] > early["step"]
    assert late["docs"] - early["docs"] >= 600
    for r in (early, late):
        assert 0 < r["first_step_s"] < r["startup_s"] < r["since_process_start_s"]

    reads = result["reads"]["per_world"]
    assert sorted(reads) == ["1", "2"]  # the full run adds W=4
    for w, r in reads.items():
        assert len(r["docs_per_step_per_rank"]) == int(w)
        assert all(d > 0 for d in r["docs_per_step_per_rank"]) and all(b > 0 for b in r["bytes_per_step_per_rank"])
    # The global batch is the same at every world size: the documents of all ranks together cover it.
    assert sum(reads["2"]["docs_per_step_per_rank"]) >= reads["1"]["docs_per_step_per_rank"][0] * 0.9

    saves = result["save_memory"]["per_world"]
    state = result["save_memory"]["state_bytes"]
    assert state == 12 * saves["1"]["n_params"] > 0
    for w, s in saves.items():
        assert len(s["written_bytes_per_rank"]) == int(w)
        assert s["rank0_peak_mib"] > 0 and s["rank0_peak_rise_mib"] >= 0
        # Every byte of the state reaches the disk once, whoever writes it.
        assert sum(s["written_bytes_per_rank"]) >= 0.9 * state and s["checkpoint_bytes"] >= 0.9 * state

    async_save = result["async_save"]
    assert async_save["off"]["blocking_s"] > 0
    if async_save["on"] is not None:
        assert async_save["on"]["blocking_s"] > 0
