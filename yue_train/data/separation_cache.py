"""Separated stems cached by content: a mix is separated once per (mix bytes, model, sample rate).

Separation is the slowest step of preparing a song, and ``yue-prep build --separate demucs --align`` needs the
vocal twice (alignment, then encoding), a re-run of a build needs it again: each reads the cache. Entries are
``<sha256>.npz`` files (``vocals``, ``accompaniment``, float32) in ``folder``, written to a temporary name and
renamed, so an interrupted write leaves no entry. The separator is made on the first miss only (loading a
demucs model takes seconds and, the first time, a download); when making it fails, every later miss raises
that same error at once instead of trying again (a download that failed for one song fails for the next).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.format.provenance import file_fingerprint


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
        if entry.is_file():
            with np.load(entry) as z:
                return z["vocals"], z["accompaniment"]
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
        tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, vocals=np.asarray(vocals, np.float32), accompaniment=np.asarray(accompaniment, np.float32))
        os.replace(tmp, entry)
        return vocals, accompaniment
