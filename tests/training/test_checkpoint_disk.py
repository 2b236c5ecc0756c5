"""A full disk: old checkpoints pruned before a save when that makes room, and a clear line (temp folder
removed) when the disk fills during one.

The real runs put ``run_dir/checkpoints`` on a small tmpfs, mounted in a user namespace (``unshare -rm``);
where the kernel does not allow that, those tests are skipped and the planning test still runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.training.helpers import PYTHON, cli_env
from yue_train.training.checkpointing.disk import room_plan
from yue_train.training.checkpointing.layout import CHECKPOINTS


def test_room_plan_prunes_the_fewest_oldest_checkpoints():
    assert room_plan(need=10, free=20, prunable=[(1, 10), (2, 10)]) == []
    assert room_plan(need=10, free=5, prunable=[(1, 3), (2, 4), (3, 9)]) == [1, 2]
    assert room_plan(need=10, free=5, prunable=[(1, 3)]) is None
    assert room_plan(need=10, free=5, prunable=[]) is None


def _tmpfs_works(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    where.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{where}'"],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


def _train_on_tmpfs(shards: Path, run: Path, size_kb: int, *extra: str) -> subprocess.CompletedProcess:
    mount = run / CHECKPOINTS
    mount.mkdir(parents=True)
    train = [
        PYTHON, "-m", "yue_train.cli.train", "recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]",
        f"trainer.run_dir={run}", "trainer.cpu_threads=1", "data.shuffle_buffer=16", *extra,
    ]  # fmt: skip
    # the tmpfs goes with the namespace: list what it holds before leaving
    script = f"mount -t tmpfs -o size={size_kb}k tmpfs '{mount}' || exit 9; \"$@\"; rc=$?; ls -A '{mount}'; exit $rc"
    cmd = ["unshare", "-rm", "sh", "-c", script, "sh", *train]
    return subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=600)


def _left(proc: subprocess.CompletedProcess) -> list[str]:
    """The checkpoint folder's entries at the end (``ls -A`` after the run's JSON summary)."""
    out = proc.stdout.rstrip().splitlines()
    tail = out[out.index("}") + 1 :] if "}" in out else out
    return sorted(tail)


@pytest.fixture
def tmpfs_ok(tmp_path) -> None:
    if not _tmpfs_works(tmp_path / "probe"):
        pytest.skip("no user namespaces here (unshare -rm): cannot mount a small tmpfs")


@pytest.mark.slow
def test_a_disk_full_during_a_save_is_one_line_and_leaves_no_temp_folder(random_shards, tmp_path, tmpfs_ok):
    run = tmp_path / "run"
    proc = _train_on_tmpfs(random_shards, run, 1024, "trainer.max_steps=2", "trainer.save_every=0")
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert err[-1].startswith("yue-train: error: no space left on the device while writing checkpoint step-2 in ")
    assert "the partial checkpoint was removed and there is no earlier checkpoint" in err[-1]
    assert "Traceback" not in proc.stderr
    assert _left(proc) == []  # no .tmp-step-2


@pytest.mark.slow
def test_old_checkpoints_are_pruned_first_when_the_next_would_not_fit(random_shards, tmp_path, tmpfs_ok):
    """Room for about 2.6 checkpoints and keep_last=2: pruning after publishing would need 3."""
    run = tmp_path / "run"
    proc = _train_on_tmpfs(
        random_shards, run, 4600, "trainer.max_steps=4", "trainer.save_every=1", "trainer.keep_last=2"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"step": 4' in proc.stdout and "Traceback" not in proc.stderr
    assert _left(proc) == ["latest", "step-3", "step-4"]


@pytest.mark.slow
def test_no_room_even_after_pruning_stops_before_writing(random_shards, tmp_path, tmpfs_ok):
    run = tmp_path / "run"
    proc = _train_on_tmpfs(
        random_shards, run, 2600, "trainer.max_steps=3", "trainer.save_every=1", "trainer.keep_last=1"
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("yue-train: error: not enough disk space for checkpoint step-2 in "), line
    assert "the same command to resume from step-1" in line
    assert _left(proc) == ["latest", "step-1"]
