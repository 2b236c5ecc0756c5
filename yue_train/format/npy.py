"""Reading ``.npy`` files whose header is checked against the file before anything is allocated.

``np.load`` trusts the header: one claiming 10**12 entries makes it allocate that many before it finds
the file short. Here the header is parsed first (NumPy's own parser, no pickle) and the array's byte size
must equal what the file holds after the header; object dtypes are refused."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from yue_train.format.files import check_regular_file


class NpyFileError(ValueError):
    """A ``.npy`` file that is not one, or whose header does not match its size: one line naming it."""


def npy_header(path: Path, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the ``.npy`` file ``path``, checked against its size."""
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
            raise NpyFileError(
                f"{what}: cannot read {path}: not a .npy file ({str(e).splitlines()[0][:160]})"
            ) from None
        offset = f.tell()
    if dtype.hasobject:
        raise NpyFileError(
            f"{what}: cannot read {path}: it holds Python objects (a pickle); only numeric arrays are read"
        )
    count = math.prod(shape)
    if count * dtype.itemsize != size - offset:
        raise NpyFileError(
            f"{what}: cannot read {path}: its header claims {count:,} entries of {dtype} "
            f"({count * dtype.itemsize:,} bytes) but the file holds {size - offset:,} bytes after it (truncated or damaged)"
        )
    return tuple(shape), dtype, offset


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """The array in ``path`` after :func:`npy_header` agreed with the file's size."""
    path = check_regular_file(path, what)
    npy_header(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise NpyFileError(f"{what}: cannot read {path} as .npy ({str(e).splitlines()[0][:160]})") from None
