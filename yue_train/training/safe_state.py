"""Checkpoint state files that load without running code.

Everything the trainer writes with ``torch.save`` (data position, RNG states, optimizer, scheduler) is
plain data: tensors, numbers, strings, ``None`` and dicts/lists/tuples of these. :func:`plain` turns
numpy arrays and scalars into tensors and Python numbers before saving, so the files load with
``torch.load(weights_only=True)``, whose unpickler builds only allowlisted types and refuses a file that
names any other callable (``os.system``, a class with a ``__reduce__``). :func:`load_plain` is the one
loader; a refused file is a :class:`CheckpointFileError` naming the file.

Files written before the state was made plain hold numpy arrays; they load with numpy's array
reconstruction added to the allowlist (a dtype, a shape and raw bytes: data, not code).
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def _numpy_globals() -> list[Any]:
    """The globals a pickled numpy array of a plain dtype names (numpy 1 and 2 spell the module apart)."""
    core = getattr(np, "_core", None) or np.core  # type: ignore[attr-defined]
    found: list[Any] = [core.multiarray._reconstruct, np.ndarray, np.dtype, core.multiarray.scalar]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and "Object" not in n]
    return found


def _unsafe_name(err: Exception) -> str:
    m = re.search(r"GLOBAL ([\w.]+)|Unsupported global: ([\w.]+)|Unsupported operand (\d+)", str(err))
    if m:
        return f"it names {next(g for g in m.groups() if g)}"
    return str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__


def load_plain(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, or :class:`CheckpointFileError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"{path}: missing")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as first:
        try:  # an older checkpoint with numpy arrays inside
            with torch.serialization.safe_globals(_numpy_globals()):
                return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise CheckpointFileError(
                f"{path}: refused to load ({_unsafe_name(first)}); a checkpoint file must be plain tensor data, "
                "and this one would run code. Do not resume from a checkpoint you did not write"
            ) from None
        except Exception as e:  # noqa: BLE001 (any damage: one line naming the file)
            raise CheckpointFileError(f"{path}: unreadable ({_unsafe_name(e)})") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointFileError(f"{path}: unreadable ({_unsafe_name(e)})") from None


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
