"""Disk space for checkpoints: before a save, :func:`make_room` compares the free space with the size of the
last checkpoint and, when short, prunes the oldest checkpoints that ``keep_last`` would drop after this save
(never the newest); when still short, it stops with a :class:`DiskSpaceError`. A write that fills the disk
anyway leaves no partial checkpoint (:func:`abort_checkpoint`).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from yue_train.training.checkpointing.layout import CHECKPOINTS, step_name
from yue_train.training.checkpointing.publish import checkpoint_steps


class DiskSpaceError(OSError):
    """Not enough free space for the next checkpoint, or the disk filled up while writing one."""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def room_plan(need: int, free: int, prunable: list[tuple[int, int]]) -> list[int] | None:
    """Steps to delete (oldest first, as few as possible) so that ``need`` bytes fit in ``free``;
    ``prunable``: ``(step, bytes)`` oldest first. None: even deleting all of them is not enough."""
    chosen: list[int] = []
    for step, size in prunable:
        if need <= free:
            break
        chosen.append(step)
        free += size
    return chosen if need <= free else None


def make_room(run_dir: Path, step: int, keep_last: int) -> None:
    """Before writing checkpoint ``step``: make sure about one more checkpoint fits on the disk.

    The estimate is the size of the newest existing checkpoint (none yet: nothing to estimate from). When
    it does not fit, the oldest checkpoints this save would prune anyway (beyond ``keep_last - 1``, and
    never the newest) are removed first; when it still does not fit, :class:`DiskSpaceError`."""
    root = Path(run_dir) / CHECKPOINTS
    steps = [s for s in checkpoint_steps(run_dir) if s != step]
    if not steps:
        return
    need = folder_bytes(root / step_name(steps[-1]))
    free = shutil.disk_usage(root).free
    keep = max(keep_last - 1, 1) if keep_last > 0 else len(steps)
    prunable = [(s, folder_bytes(root / step_name(s))) for s in steps[: max(len(steps) - keep, 0)]]
    chosen = room_plan(need, free, prunable)
    if chosen is None:
        raise DiskSpaceError(
            f"not enough disk space for checkpoint step-{step} in {root}: about {_gb(need)} needed (the size "
            f"of step-{steps[-1]}), {_gb(free)} free; free some space (or lower trainer.keep_last) and run the "
            f"same command to resume from step-{steps[-1]}"
        )
    for old in chosen:
        shutil.rmtree(root / step_name(old), ignore_errors=True)


def is_disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of space: ENOSPC anywhere in the error (safetensors and torch wrap
    it in their own exceptions), or a torch write error with (almost) no space left."""
    text = str(err)
    if getattr(err, "errno", None) == errno.ENOSPC or "No space left" in text or "os error 28" in text:
        return True
    torch_write = "unexpected pos" in text or "file write failed" in text
    return torch_write and shutil.disk_usage(folder).free < 64 * 2**20


def abort_checkpoint(run_dir: Path, tmp: Path, step: int, err: BaseException) -> DiskSpaceError:
    """Remove the partial ``tmp`` after a failed write; the error to raise when the disk was full."""
    free = shutil.disk_usage(Path(run_dir) / CHECKPOINTS).free
    shutil.rmtree(tmp, ignore_errors=True)
    kept = checkpoint_steps(run_dir)
    after = f"step-{kept[-1]} is intact" if kept else "there is no earlier checkpoint"
    return DiskSpaceError(
        f"no space left on the device while writing checkpoint step-{step} in {tmp.parent} ({_gb(free)} "
        f"free); the partial checkpoint was removed and {after}: free some space and run the same command"
    )
