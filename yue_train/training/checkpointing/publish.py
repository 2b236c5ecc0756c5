"""Run-folder checkpoints: ``checkpoints/step-N/`` written atomically, last K kept, ``latest`` link (names:
:mod:`.layout`).

A checkpoint is written into ``checkpoints/.tmp-step-N/``; ``manifest.json`` (:mod:`.verify`) and then
``COMPLETE`` are added, the folder is renamed, ``latest`` (a symlink, replaced atomically) is pointed at it, and
older ones are pruned. A process killed at any moment therefore leaves every ``step-N`` folder complete and
``latest`` pointing at one of them; a stray ``.tmp-*`` folder is removed by the next save. A folder renamed by
hand without ``COMPLETE`` is not trusted. Resuming (:func:`pick_checkpoint`) takes the newest checkpoint that
verifies and names each newer one it skipped with its reason.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from yue_train.training.checkpointing.layout import (
    CHECKPOINTS,
    LATEST,
    MANIFEST,
    MARKER,
    TMP_PREFIX,
    step_name,
    temp_folder,
)
from yue_train.training.checkpointing.verify import verify_checkpoint, write_manifest

_STEP_RE = re.compile(r"^step-(\d+)$")
# Fault injection for preemption tests: "during_save:STEP:SECONDS" sleeps before the rename of step STEP,
# "after_save:STEP:SECONDS" after it, "dcp_write:STEP:SECONDS" before the DCP files of step STEP are written
# (in the background thread of an async save); lets a test SIGKILL the process at a known point.
FAULT_ENV = "YUE_TRAIN_FAULT_PAUSE"


def fault_pause(stage: str, step: int) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec:
        want_stage, want_step, seconds = spec.split(":")
        if want_stage == stage and int(want_step) == step:
            print(f"[fault injection] pausing {seconds}s at {stage} of step {step}", flush=True)
            time.sleep(float(seconds))


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints, ascending."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    steps = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and (p / MARKER).exists():
            steps.append(int(m.group(1)))
    return sorted(steps)


def begin_checkpoint(run_dir: Path, step: int) -> Path:
    """Create the empty temp folder ``checkpoints/.tmp-step-N`` (main process; others wait at a barrier)."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = temp_folder(run_dir, step)
    tmp.mkdir()
    return tmp


def publish_checkpoint(run_dir: Path, step: int, tmp: Path, keep_last: int = 3) -> Path:
    """Mark ``tmp`` complete, rename it to ``checkpoints/step-N``, point ``latest`` at it, prune old ones."""
    root = Path(run_dir) / CHECKPOINTS
    write_manifest(tmp, exclude=(MARKER, MANIFEST))
    (tmp / MARKER).write_text(f"{step}\n")
    _fsync_tree(tmp)
    fault_pause("during_save", step)
    final = root / step_name(step)
    if final.exists():  # re-saving a step (e.g. final save right after a periodic one)
        shutil.rmtree(final)
    os.replace(tmp, final)
    link_tmp = root / f"{TMP_PREFIX}{LATEST}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(final.name, link_tmp)
    os.replace(link_tmp, root / LATEST)
    _fsync_tree(root)
    fault_pause("after_save", step)
    if keep_last > 0:
        for old in checkpoint_steps(run_dir)[:-keep_last]:
            shutil.rmtree(root / step_name(old), ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at if complete, else the newest complete one, else None."""
    root = Path(run_dir) / CHECKPOINTS
    link = root / LATEST
    target = link.resolve()
    inside = target.parent == root.resolve()  # one of this run's step folders, not a link out of the run
    if link.exists() and inside and (target / MARKER).exists():
        return target
    steps = checkpoint_steps(run_dir)
    return root / step_name(steps[-1]) if steps else None


def pick_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint of ``run_dir`` that verifies, and ``"step-N (reason)"`` for each newer one
    that does not (newest first)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None, []
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_RE.match(p.name)) and p.is_dir())
    skipped = []
    for step, folder in reversed(found):
        if folder.is_symlink():  # a save renames a real folder into place: a link was planted (or copied in)
            skipped.append(f"{folder.name} (a symlink to {os.readlink(folder)}, not a checkpoint folder; refused)")
            continue
        problem = verify_checkpoint(folder, step)
        if problem is None:
            return folder, skipped
        skipped.append(f"{folder.name} ({problem})")
    return None, skipped
