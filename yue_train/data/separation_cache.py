"""Separated stems cached by content: a mix is separated once per (mix bytes, model, sample rate).

Separation is the slowest step of preparing a song, and ``yue-prep build --separate demucs --align`` needs the
vocal twice (alignment, then encoding), a re-run of a build needs it again: each reads the cache. Entries are
``<sha256>.npz`` files (``vocals``, ``accompaniment``, float32) in ``folder``, written to a temporary name and
renamed, so an interrupted write leaves no entry. The separator is made on the first miss only (loading a
demucs model takes seconds and, the first time, a download); when making it fails, every later miss raises
that same error at once instead of trying again (a download that failed for one song fails for the next).

An entry is checked before it is used, since anything may lie in a cache folder: a regular file, a zip of the
two arrays only, each 1-D float32 of equal length no longer than :data:`MAX_CACHED_SECONDS` (read from the
npy headers before any array is), with finite samples. Anything else is said in one line and separated again
(the entry is replaced); temporary files are created exclusively, so a planted link is never written through.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.format.provenance import file_fingerprint

MAX_CACHED_SECONDS = 2 * 3600  # at 16 kHz: 460 MB per stem, the most an entry may make us allocate
STEMS = ("vocals", "accompaniment")


def _header(z: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with z.open(f"{name}.npy") as f:  # the header only, no data
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def entry_problem(entry: Path, sample_rate: int) -> str | None:
    """What makes cache ``entry`` unusable (checked from its headers, nothing loaded), or None."""
    if entry.is_symlink() or not entry.is_file():
        return "not a regular file"
    limit = MAX_CACHED_SECONDS * sample_rate
    try:
        with zipfile.ZipFile(entry) as z:
            if sorted(z.namelist()) != sorted(f"{s}.npy" for s in STEMS):
                return f"holds {sorted(z.namelist())[:4]}, not the two stems"
            shapes = {s: _header(z, s) for s in STEMS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        return f"unreadable ({type(e).__name__})"
    for stem, (shape, dtype) in shapes.items():
        if dtype != np.float32 or len(shape) != 1 or shape[0] > limit:
            return f"{stem} is {dtype} of shape {shape}, not float32 samples of at most {MAX_CACHED_SECONDS} s"
    if shapes["vocals"][0] != shapes["accompaniment"][0]:
        return "its stems differ in length"
    return None


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/yue-train/separated`` (``~/.cache/yue-train/separated``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yue-train" / "separated"


class SeparationCache:
    def __init__(self, folder: Path, model: str, make_separator: Callable[[], Any]) -> None:
        self.folder, self.model = Path(folder), model
        self._make = make_separator
        self._separator: Any = None
        self._failed: Exception | None = None
        self.misses = 0

    def key(self, path: str | Path, sample_rate: int) -> str:
        return file_fingerprint(path, hashlib.sha256(f"{self.model}\n{sample_rate}\n".encode()))

    def separate(self, path: str | Path, sample_rate: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
        """(vocals, accompaniment) of the mix at ``path``, mono at ``sample_rate``."""
        entry = self.folder / f"{self.key(path, sample_rate)}.npz"
        if entry.exists() or entry.is_symlink():
            cached = self._cached(entry, sample_rate)
            if cached is not None:
                return cached
        if self._failed is not None:
            raise self._failed
        if self._separator is None:
            try:
                self._separator = self._make()
            except Exception as e:
                self._failed = e
                raise
        self.misses += 1
        vocals, accompaniment = self._separator.separate(str(path), sample_rate)
        self.folder.mkdir(parents=True, exist_ok=True)
        if entry.is_dir() and not entry.is_symlink():  # a folder in the entry's place: nothing to cache into
            return vocals, accompaniment
        fd, tmp = tempfile.mkstemp(prefix=f"{entry.stem}.", suffix=".tmp.npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, vocals=np.asarray(vocals, np.float32), accompaniment=np.asarray(accompaniment, np.float32))
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return vocals, accompaniment

    def _cached(self, entry: Path, sample_rate: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The stems of a cache entry that checks out; None (said in one line) for one to separate again."""
        problem = entry_problem(entry, sample_rate)
        if problem is None:
            try:
                with np.load(entry, allow_pickle=False) as z:
                    vocals, accompaniment = z["vocals"], z["accompaniment"]
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                problem = f"unreadable ({type(e).__name__})"
            else:
                if np.isfinite(vocals).all() and np.isfinite(accompaniment).all():
                    return vocals, accompaniment
                problem = "holds NaN or infinite samples"
        print(f"separation cache: {entry} is damaged ({problem}); separating again", file=sys.stderr)
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink(missing_ok=True)
        return None
