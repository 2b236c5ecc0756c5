"""Without CUDA every ``gpu`` test is skipped with the reason; with CUDA none is skipped for that reason."""

from __future__ import annotations

import subprocess
import sys

import torch

from tests.conftest import GPU_SKIP_REASON, REPO


def test_gpu_tests_skip_cleanly_without_cuda():
    if torch.cuda.is_available():
        import pytest

        pytest.skip("a CUDA device is present: the gpu tests run here")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/gpu"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) >= 4 and all(GPU_SKIP_REASON in line for line in skipped), proc.stdout[-3000:]
    assert " passed" not in proc.stdout and " failed" not in proc.stdout
