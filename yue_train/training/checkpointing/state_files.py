"""Checkpoint state files that load without running code.

Everything the trainer writes with ``torch.save`` (data position, RNG states, optimizer groups, scheduler)
is plain data: tensors, numbers, strings, ``None`` and dicts/lists/tuples of these. :func:`plain` turns
numpy arrays and scalars into tensors and Python numbers before saving, so :func:`load_plain`, the one
loader, reads them through :data:`yue_train.safe_pickle.PLAIN_DATA`; a file that names any other callable
(``os.system``, a class with a ``__reduce__``) is a :class:`CheckpointFileError` naming the file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yue_train.safe_pickle import CheckpointReadError, UnsafeCheckpointError, restricted_torch_load


class CheckpointFileError(RuntimeError):
    """A checkpoint file that is missing, damaged, or would need code to load; the message names it."""


def plain(obj: Any) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers (recursively)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def save_plain(obj: Any, path: Path) -> None:
    torch.save(plain(obj), path)


def refused(path: Path, names: list[str]) -> CheckpointFileError:
    """The error for a checkpoint file whose pickle names ``names`` beyond plain data."""
    return CheckpointFileError(
        f"{path}: refused to load (it names {', '.join(names[:3])}); a checkpoint file must be plain tensor data, "
        "and this one would run code. Do not resume from a checkpoint you did not write"
    )


def load_plain(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """The plain data of ``path``, or :class:`CheckpointFileError` naming ``path``."""
    try:
        return restricted_torch_load(path, map_location=map_location)
    except UnsafeCheckpointError as e:
        raise refused(path, [e.qualname]) from None
    except CheckpointReadError as e:
        raise CheckpointFileError(str(e)) from None


# ----------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states, as plain data."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return plain(state)


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    np_state = state["numpy"]
    if isinstance(np_state, dict):
        key = np.asarray(np_state["state"]["key"], dtype=np.uint32)
        np_state = {**np_state, "state": {**np_state["state"], "key": key}}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(x: Any) -> Any:
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
