"""Run-folder checkpoints: ``checkpoints/step-N/`` written atomically, last K kept, ``latest`` link.

A checkpoint is written into ``checkpoints/.tmp-step-N/`` and renamed when complete, then ``latest``
(a symlink, replaced atomically) is pointed at it, then older ones are pruned. A process killed at any
moment therefore leaves every ``step-N`` folder complete and ``latest`` pointing at one of them; a stray
``.tmp-*`` folder is ignored and removed by the next save. ``COMPLETE`` is written last inside the temp
folder as a second guard (a folder renamed by hand without it is not trusted).

Before ``COMPLETE``, ``manifest.json`` records every file's size and xxh3-128 checksum. Resuming
(:func:`pick_checkpoint`) takes the newest checkpoint that verifies: every listed file present with its
size and checksum, no file the manifest does not list, JSON/YAML/safetensors headers that parse, and
every ``.pt`` file naming no callable beyond plain data (:mod:`.integrity`). Older ones are tried in
turn and each skipped one is named with its reason.

Layout of ``checkpoints/step-N/`` (``trainer_state.json`` ``"checkpoint_format"`` says which state it holds):

- ``dcp/.metadata``, ``dcp/__R_0.distcp``: model (LoRA: trainable parameters only) and optimizer tensors
  through ``torch.distributed.checkpoint``, one data file per process holding its shard (:mod:`.dcp_state`);
  ``optimizer_groups.pt``: the optimizer's param groups (plain data); ``model_config/``: the Hugging Face
  ``config.json`` (+ ``generation_config.json``) or the PEFT ``adapter_config.json`` the tensors fit.
  Format ``"deepspeed"`` instead: ``deepspeed/`` (DeepSpeed's own partitioned files, :mod:`.deepspeed_state`)
  and the same ``model_config/``.
- ``model/`` (full model) or ``adapter/`` (PEFT adapter): Hugging Face weights, only at the end of a phase
  and every ``trainer.hf_every`` checkpoints (``"hf_weights"`` in ``trainer_state.json`` says which);
  ``yue-train export`` makes them from any checkpoint.
- ``scheduler.pt``, ``data.pt`` (data position), ``rng_rank{R}.pt`` (one per process), all plain data;
  ``trainer_state.json`` (step, tokens, world size, format), ``config.yaml`` (the resolved config),
  ``yue_provenance.json``; ``manifest.json`` and ``COMPLETE`` (below).

Async save (``trainer.async_save``): the DCP files are written by a background thread into the temp folder
while training goes on; :func:`publish_checkpoint` (manifest, ``COMPLETE``, rename, ``latest``, pruning)
runs only after that write has finished, so a process killed during it leaves the previous checkpoint as
``latest`` and a ``.tmp-step-N`` folder that the next save removes.

Disk space: before a save, :func:`make_room` compares the free space with the size of the last
checkpoint and, when short, prunes the oldest checkpoints that ``keep_last`` would drop after this save
(never the newest); when still short, it stops with a :class:`DiskSpaceError`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from pathlib import Path

from yue_train.training.integrity import MANIFEST, verify_checkpoint, write_manifest

CHECKPOINTS = "checkpoints"
LATEST = "latest"
MARKER = "COMPLETE"
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
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step-{step}"
    tmp.mkdir()
    return tmp


def publish_checkpoint(run_dir: Path, step: int, tmp: Path, keep_last: int = 3) -> Path:
    """Mark ``tmp`` complete, rename it to ``checkpoints/step-N``, point ``latest`` at it, prune old ones."""
    root = Path(run_dir) / CHECKPOINTS
    write_manifest(tmp, exclude=(MARKER, MANIFEST))
    (tmp / MARKER).write_text(f"{step}\n")
    _fsync_tree(tmp)
    fault_pause("during_save", step)
    final = root / f"step-{step}"
    if final.exists():  # re-saving a step (e.g. final save right after a periodic one)
        shutil.rmtree(final)
    os.replace(tmp, final)
    link_tmp = root / f".tmp-{LATEST}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(final.name, link_tmp)
    os.replace(link_tmp, root / LATEST)
    _fsync_tree(root)
    fault_pause("after_save", step)
    if keep_last > 0:
        for old in checkpoint_steps(run_dir)[:-keep_last]:
            shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` points at if complete, else the newest complete one, else None."""
    root = Path(run_dir) / CHECKPOINTS
    link = root / LATEST
    if link.exists() and (link.resolve() / MARKER).exists():
        return link.resolve()
    steps = checkpoint_steps(run_dir)
    return root / f"step-{steps[-1]}" if steps else None


def pick_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint of ``run_dir`` that verifies, and ``"step-N (reason)"`` for each newer one
    that does not (newest first)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return None, []
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_RE.match(p.name)) and p.is_dir())
    skipped = []
    for step, folder in reversed(found):
        problem = verify_checkpoint(folder, step)
        if problem is None:
            return folder, skipped
        skipped.append(f"{folder.name} ({problem})")
    return None, skipped


# --------------------------------------------------------------------------------------- disk space
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
    need = folder_bytes(root / f"step-{steps[-1]}")
    free = shutil.disk_usage(root).free
    keep = max(keep_last - 1, 1) if keep_last > 0 else len(steps)
    prunable = [(s, folder_bytes(root / f"step-{s}")) for s in steps[: max(len(steps) - keep, 0)]]
    chosen = room_plan(need, free, prunable)
    if chosen is None:
        raise DiskSpaceError(
            f"not enough disk space for checkpoint step-{step} in {root}: about {_gb(need)} needed (the size "
            f"of step-{steps[-1]}), {_gb(free)} free; free some space (or lower trainer.keep_last) and run the "
            f"same command to resume from step-{steps[-1]}"
        )
    for old in chosen:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)


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
