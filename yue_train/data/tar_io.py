"""Tar files of samples in the webdataset layout, with the standard library only (no torch, no webdataset).

A sample is a key and named byte strings; each becomes one tar member ``KEY.NAME`` (``000000007.json``,
``000000007.input_ids.npy``), members of a sample adjacent and in name order. :class:`TarWriter` writes
exactly the bytes webdataset's ``TarWriter`` writes for the same samples and a whole-second ``mtime``
(same member names, order, owner ``bigdata``, mode 0444, PAX tar), so webdataset reads these files; the
reader (:mod:`.shard_reader`, over :mod:`.tar_stream`) reads both. The default ``mtime`` is fixed, so the
same samples give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

OWNER = "bigdata"
MODE = 0o444
FIXED_MTIME = 0  # seconds since the epoch written into every member, unless the writer is given another


class TarWriter:
    """Writes samples (``key`` + ``{name: bytes}``) as ``KEY.NAME`` members of an uncompressed tar."""

    def __init__(self, path: str | Path, mtime: int = FIXED_MTIME) -> None:
        self._tar: tarfile.TarFile | None = tarfile.open(str(path), mode="w|")  # noqa: SIM115 -- see close()
        self.mtime = mtime

    def write(self, key: str, members: Mapping[str, bytes]) -> int:
        """Append one sample; returns the bytes of member data written."""
        if not key or "." in key.rsplit("/", 1)[-1]:
            raise ValueError(f"sample key {key!r} must be non-empty and hold no '.' in its last path part")
        total = 0
        for name in sorted(members):
            data = members[name]
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"member {name!r} of sample {key!r} is {type(data).__name__}, not bytes")
            info = tarfile.TarInfo(f"{key}.{name}")
            info.size = len(data)
            info.mtime = self.mtime
            info.mode = MODE
            info.uname = info.gname = OWNER
            assert self._tar is not None, "write after close"
            self._tar.addfile(info, io.BytesIO(data))
            total += info.size
        return total

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()  # writes the end-of-archive blocks and closes the file
            self._tar = None

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
