"""One writer per folder: an advisory ``fcntl`` lock on a file inside the folder.

A run folder (training) and a prep output folder (tokenize, build) are written by one process at a time; a
second process that points at the same folder is refused with one line naming the holder's pid instead of
deleting the first one's temporary files or interleaving its logs. The lock is advisory and held by an open
file descriptor, so it disappears with the process (SIGKILL included) and never needs cleaning up; the pid
written into the file is information for the message only. Under torchrun only rank 0 takes the lock, and the
caller decides that.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".yue-lock"


class FolderBusyError(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """Exclusive lock on ``folder`` for the life of this object (or of its ``with`` block).

    ``what`` names the folder's use in the refusal, e.g. ``"run folder"`` or ``"output folder"``."""

    def __init__(self, folder: Path | str, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> FolderLock:
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_pid(fd)
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            who = f"process {holder}" if holder else "another process"
            raise FolderBusyError(
                f"{self.what} {self.folder} is in use by {who}; wait for it to finish, stop it, "
                f"or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
