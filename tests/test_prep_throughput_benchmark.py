"""benchmarks/prep_throughput.py runs in a reduced form and prints its CPU figure and token check."""

import importlib.util
import json
import struct
import subprocess
import sys

import numpy as np

from tests.conftest import FIXTURES, REPO

SCRIPT = REPO / "benchmarks" / "prep_throughput.py"


def test_reduced_benchmark_prints_cpu_seconds_and_checks_tokens():
    cmd = [sys.executable, str(SCRIPT), "--songs", "3", "--seconds", "20", "--repeats", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["documents"] == 3 and result["tokens"] > 3 * 20 * 100  # two tracks at 50 frames/s, and text
    assert 0 < result["yue_train_cpu_s"] < 60
    assert result["official_source"].startswith("no figure (recorded only for 200 songs of 180 s")
    assert (FIXTURES / "golden" / "cot_dummy.npz").is_file()
    assert result["tokens_identical"] is True
    assert "identical to the official golden streams" in proc.stdout


def test_megatron_reader_splits_documents_at_the_index(tmp_path):
    spec = importlib.util.spec_from_file_location("prep_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # two documents: [1 2 3 | 4 5] (two sequences) and [6] (one); int32 tokens (dtype code 4)
    lengths, doc_index = np.array([3, 2, 1], np.int32), np.array([0, 2, 3], np.int64)
    pointers = np.array([0, 12, 20], np.int64)
    idx = b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 4) + struct.pack("<QQ", 3, 3)
    (tmp_path / "x.idx").write_bytes(idx + lengths.tobytes() + pointers.tobytes() + doc_index.tobytes())
    np.arange(1, 7, dtype=np.int32).tofile(tmp_path / "x.bin")
    docs = bench.read_megatron_documents(str(tmp_path / "x"))
    assert [d.tolist() for d in docs] == [[1, 2, 3, 4, 5], [6]]
