"""Reading ``.npy`` files whose header is checked against the file before anything is allocated.

``np.load`` trusts the header: one claiming 10**12 entries makes it allocate that many before it finds
the file short. Here the header is parsed first (NumPy's own parser, no pickle) and the array's byte size
must equal what the file holds after the header; object dtypes are refused."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from yue_train.errors import first_line
from yue_train.format.files import check_regular_file


class NpyFileError(ValueError):
    """A ``.npy`` file that is not one, or whose header does not match its size: one line naming it."""


def read_npy_header(f: BinaryIO, total: int, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) of the ``.npy`` of ``total`` bytes whose start ``f`` reads;
    :class:`NpyFileError` starting with ``where`` when it is not one, holds objects or does not fit ``total``."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise NpyFileError(f"{where} is not a .npy file ({first_line(e)[:160]})") from None
    offset = f.tell()
    if dtype.hasobject:
        raise NpyFileError(f"{where} holds Python objects (a pickle; refused, never loaded)")
    count = math.prod(shape)
    if any(d < 0 for d in shape) or count * dtype.itemsize != total - offset:
        raise NpyFileError(
            f"{where}: its header claims {count:,} entries of {dtype} ({count * dtype.itemsize:,} bytes) "
            f"but the file holds {total - offset:,} bytes after it (truncated or damaged)"
        )
    return tuple(shape), fortran, dtype, offset


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """The array in ``path`` after :func:`read_npy_header` agreed with the file's size."""
    path = check_regular_file(path, what)
    with open(path, "rb") as f:
        read_npy_header(f, os.stat(path).st_size, f"{what}: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise NpyFileError(f"{what}: cannot read {path} as .npy ({first_line(e)[:160]})") from None
