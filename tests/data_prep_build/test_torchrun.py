"""``torchrun --nproc_per_node=2`` (gloo, CPU): each rank encodes its slice, rank 0 merges -- and the
result is byte for byte the one-process build."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep.build import BUILD_SUMMARY_NAME, cmd_build
from tests.conftest import REPO
from tests.data_prep_build.conftest import build_args
from yue_train.data.shards import iter_documents

MODES = "cot,icl-dual,stage2"


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_ranks_build_the_same_shards_as_one_process(tmp_path, demo_songs, codec_dir):
    songs, _ = demo_songs
    one, two = tmp_path / "one", tmp_path / "two"
    assert cmd_build(build_args(songs, one, codec_dir, "--modes", MODES, "--threads", "1")) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "data_prep.cli"]
    cmd += ["build", "--input", str(songs), "--out", str(two), "--codec", str(codec_dir), "--device", "cpu"]
    cmd += ["--no-progress", "--modes", MODES, "--threads", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads((two / BUILD_SUMMARY_NAME).read_text())
    assert summary["world_size"] == 2 and summary["songs_encoded"] == 3
    assert (one / "manifest.jsonl").read_bytes() == (two / "manifest.jsonl").read_bytes()
    codes = sorted(p.relative_to(one) for p in (one / "codes").rglob("*.npy"))
    assert len(codes) == 9
    for rel in codes:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    for name in MODES.split(","):
        a, b = list(iter_documents(one / "shards" / name)), list(iter_documents(two / "shards" / name))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            assert x.meta == y.meta
            np.testing.assert_array_equal(x.input_ids, y.input_ids)
            np.testing.assert_array_equal(x.roles, y.roles)
    mix_one, mix_two = (json.loads((p / "mixture.json").read_text()) for p in (one, two))
    assert mix_one == mix_two
