"""When a checkpoint becomes visible: the temp folder, the (possibly background) write, the atomic publish.

:class:`Saver` runs on every process around the trainer's ``_write_checkpoint``: the main process makes room
and creates ``.tmp-step-N`` while the others wait; every process writes its files; a synchronous save then
publishes at once (:func:`~.publish.publish_checkpoint`, between barriers). An async save
(``trainer.async_save``) returns once DCP has staged the tensors in CPU memory and is published when the
background write is done: checked at each step boundary (:meth:`Saver.poll`) and waited for before the next
save, at the end of a phase and on SIGTERM (:meth:`Saver.wait`). A process killed during the write leaves
the previous checkpoint as ``latest``. The background write's collectives run on their own gloo group so they
never interleave with the training loop's.

:attr:`Saver.log` (the run summary's ``checkpoint_saves``) records per save how long it held the training
loop (``blocking_s``) and the bytes of this process's DCP file (``bytes``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from yue_train.training import ranks
from yue_train.training.checkpointing import dcp
from yue_train.training.checkpointing.disk import DiskSpaceError, abort_checkpoint, is_disk_full, make_room
from yue_train.training.checkpointing.layout import temp_folder
from yue_train.training.checkpointing.publish import begin_checkpoint, publish_checkpoint


@dataclass
class _Pending:
    step: int
    folder: Path
    future: Future
    record: dict[str, Any]


class Saver:
    def __init__(self, run_dir: Path, keep_last: int, main: bool, async_save: bool) -> None:
        self.run_dir, self.keep_last, self.main = Path(run_dir), keep_last, main
        self.async_group: Any = None
        if async_save:  # a collective when distributed: every process builds the Saver at the same point
            self.async_group = dist.new_group(backend="gloo") if dist.is_initialized() else "local"
        self._pending: _Pending | None = None
        self.log: list[dict[str, Any]] = []

    def begin(self, step: int) -> Path:
        """The empty temp folder of checkpoint ``step`` (made by the main process; all wait for it)."""
        self.wait()
        if self.main:
            make_room(self.run_dir, step, self.keep_last)
            begin_checkpoint(self.run_dir, step)
        ranks.barrier()
        return temp_folder(self.run_dir, step)

    def failed(self, step: int, folder: Path, err: BaseException) -> DiskSpaceError | None:
        """After a failed write: the partial folder removed and the error to raise when the disk was full."""
        if self.main and is_disk_full(err, folder.parent):
            return abort_checkpoint(self.run_dir, folder, step, err)
        return None

    def commit(self, step: int, folder: Path, future: Future | None, started: float) -> None:
        """Publish ``folder`` as checkpoint ``step`` now, or (``future``: an async write) once it is written."""
        record = {"step": step, "blocking_s": 0.0, "bytes": 0}
        if future is not None:
            record["blocking_s"] = round(time.perf_counter() - started, 4)
            self._pending = _Pending(step, folder, future, record)
            return
        ranks.barrier()
        record["bytes"] = dcp.saved_bytes(folder)
        if self.main:
            publish_checkpoint(self.run_dir, step, folder, self.keep_last)
        ranks.barrier()
        record["blocking_s"] = round(time.perf_counter() - started, 4)
        self.log.append(record)

    def poll(self) -> None:
        """At a step boundary: publish the async checkpoint whose write has finished (main process)."""
        if self._pending is not None and self._pending.future.done():
            self._publish()

    def wait(self) -> None:
        """Block until the pending async write (if any) is written, then publish it."""
        if self._pending is not None:
            with dcp.unwrapped_errors():
                self._pending.future.result()
            self._publish()

    def abandon(self) -> None:
        """Training failed: publish the async checkpoint only if it is already complete; never wait."""
        if self._pending is not None and self._pending.future.done() and self._pending.future.exception() is None:
            self._publish()
        self._pending = None

    def _publish(self) -> None:
        p, self._pending = self._pending, None
        assert p is not None
        with dcp.unwrapped_errors():
            p.future.result()  # raises the background write's error
        p.record["bytes"] = dcp.saved_bytes(p.folder) if p.folder.is_dir() else 0
        if self.main:
            publish_checkpoint(self.run_dir, p.step, p.folder, self.keep_last)
        self.log.append(p.record)
