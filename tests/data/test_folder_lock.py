"""The folder lock refuses a second writer with the holder's pid, and dies with its process."""

import os
import subprocess
import sys
import textwrap

import pytest

from yue_train.data.folder_lock import FolderBusyError, FolderLock


def _hold_in_child(folder, ready):
    code = textwrap.dedent(
        f"""
        import sys, time
        from yue_train.data.folder_lock import FolderLock
        lock = FolderLock({str(folder)!r}).acquire()
        open({str(ready)!r}, "w").close()
        time.sleep(60)
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ})


def _wait_for(path, proc):
    import time

    for _ in range(600):
        if path.exists():
            return
        assert proc.poll() is None, "the lock holder exited early"
        time.sleep(0.05)
    raise AssertionError("the lock holder never got the lock")


def test_second_process_is_refused_with_holder_pid_and_lock_dies_with_sigkill(tmp_path):
    folder, ready = tmp_path / "run", tmp_path / "ready"
    holder = _hold_in_child(folder, ready)
    try:
        _wait_for(ready, holder)
        with pytest.raises(FolderBusyError) as err:
            FolderLock(folder, "run folder").acquire()
        message = str(err.value)
        assert "\n" not in message
        assert f"run folder {folder} is in use by process {holder.pid}" in message
    finally:
        holder.kill()
        holder.wait()
    with FolderLock(folder) as lock:  # SIGKILL released it: no stale lock to clean up
        assert lock.path.read_text().strip() == str(os.getpid())


def test_same_process_reacquires_after_release(tmp_path):
    lock = FolderLock(tmp_path / "out")
    lock.acquire()
    lock.release()
    with FolderLock(tmp_path / "out"):
        pass
