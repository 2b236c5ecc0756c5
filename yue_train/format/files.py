"""Input files are regular files: a FIFO, device, socket or folder given where a file is expected is refused
from ``os.stat`` alone, before anything opens it (opening a FIFO for reading blocks until a writer appears;
reading a device such as ``/dev/zero`` never ends)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


class SpecialFileError(ValueError):
    """A path that exists but is not a regular file."""


def check_regular_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path when it names a regular file (symlinks followed); ``what`` names it in messages.

    Raises FileNotFoundError when nothing is there and SpecialFileError for anything else."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: file not found: {path}") from None
    except OSError as e:
        raise SpecialFileError(f"{what}: cannot read {path} ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "special file")
        raise SpecialFileError(f"{what}: {path} is a {kind}, not a regular file")
    return path


def read_bytes_capped(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, refused (ValueError naming it) when it holds more than
    ``max_bytes``: the size is checked from ``os.stat`` first, and no more than ``max_bytes + 1`` are read."""
    path = check_regular_file(path, what)
    size = os.stat(path).st_size
    if size > max_bytes:
        raise ValueError(f"{what}: {path} holds {size:,} bytes, more than the {max_bytes:,} read here")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what}: {path} grew past the {max_bytes:,} bytes read here")
    return data


def read_text_capped(path: str | Path, what: str, max_bytes: int, errors: str = "strict") -> str:
    """:func:`read_bytes_capped` decoded as UTF-8 (``UnicodeDecodeError`` when not, unless ``errors`` says)."""
    return read_bytes_capped(path, what, max_bytes).decode("utf-8", errors=errors)
