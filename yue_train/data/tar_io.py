"""Tar files of samples in the webdataset layout, with the standard library only (no torch, no webdataset).

A sample is a key and named byte strings; each becomes one tar member ``KEY.NAME`` (``000000007.json``,
``000000007.input_ids.npy``), members of a sample adjacent and in name order. :class:`TarWriter` writes
exactly the bytes webdataset's ``TarWriter`` writes for the same samples and a whole-second ``mtime``
(same member names, order, owner ``bigdata``, mode 0444, PAX tar), so webdataset reads these files and
this module reads webdataset's. The default ``mtime`` is fixed, so the same samples give the same bytes.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

OWNER = "bigdata"
MODE = 0o444
FIXED_MTIME = 0  # seconds since the epoch written into every member, unless the writer is given another
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # key = path up to the first dot of the file name


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


def split_name(name: str) -> tuple[str, str] | None:
    """``("dir/KEY", "ext.more")`` for ``"dir/KEY.ext.more"``; None for a name without an extension."""
    match = _KEY_EXT.match(name)
    return (match.group(1), match.group(2)) if match else None


def iter_tar_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of a local tar file as ``(key, {name: bytes})``, in file order, read as a stream.

    Adjacent members with the same key form one sample (names lower-cased, as webdataset does); members
    that are not regular files or have no extension are skipped. A sample naming a member twice, or a
    damaged tar, raises ``ValueError`` naming the file."""
    key: str | None = None
    sample: dict[str, bytes] = {}
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                parts = split_name(info.name)
                if parts is None:
                    continue
                base, ext = parts[0], parts[1].lower()
                if base != key:
                    if key is not None:
                        yield key, sample
                    key, sample = base, {}
                if ext in sample:
                    raise ValueError(f"{path}: sample {base!r} holds member {ext!r} twice")
                member = tar.extractfile(info)
                assert member is not None  # a regular file always has content
                sample[ext] = member.read()
                tar.members = []  # a stream: keep no index of what was read
    except tarfile.TarError as e:
        raise ValueError(f"{path} is not a readable tar shard ({e}); write it again with `yue-prep tokenize`") from e
    if key is not None:
        yield key, sample
