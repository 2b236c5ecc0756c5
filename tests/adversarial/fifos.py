"""FIFOs for tests of code that must never open them: if the code under test does open one for reading, a
watchdog thread connects a writer and closes it after a few seconds, so the reader gets end-of-file and the
test fails on what it read instead of hanging."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def unblocking_fifo(path: Path, after_s: float = 3.0) -> Iterator[Path]:
    """Create a FIFO at ``path`` for the ``with`` block; a reader blocked on it is released after ``after_s``."""
    os.mkfifo(path)
    done = threading.Event()

    def watchdog() -> None:
        start = time.monotonic()
        while not done.wait(0.1):
            if time.monotonic() - start < after_s:
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only while a reader waits
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
                continue
            os.close(fd)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()
