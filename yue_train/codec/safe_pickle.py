"""Restricted loading of the official ``.pth`` files: data in, never code.

The X-Codec checkpoint is a full training snapshot (model, discriminators, optimizer states, omegaconf
objects), so ``torch.load(weights_only=True)`` refuses it, while ``weights_only=False`` would run whatever
callables the pickle names. We pass torch an Unpickler whose ``find_class`` is an allow-list:

* tensor/storage rebuilders and plain containers are returned as they are;
* data-only classes we do not need (omegaconf configs, numpy scalars, ...) are replaced by an inert stub
  that records its arguments and never runs any of the original class's code;
* anything else is refused with :class:`UnsafeCheckpointError`, before it can be called.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import pickle
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file names a global that is not on the allow-list."""


class CheckpointReadError(ValueError):
    """The file is missing, truncated or not a torch checkpoint."""


# Callables a torch checkpoint legitimately needs to rebuild tensors and containers.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,  # its factory comes through this same filter
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes (e.g. inside numpy scalars)
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
# Plain data types (omegaconf also records them as type metadata). Never getattr/eval/exec/__import__.
for _t in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bytearray, bool, slice):
    _ALLOWED[("builtins", _t.__name__)] = _t
for _dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16):
    _ALLOWED[("torch", str(_dt).removeprefix("torch."))] = _dt
_ALLOWED[("torch", "int8")] = torch.int8
_ALLOWED[("torch", "uint8")] = torch.uint8
_ALLOWED[("torch", "bool")] = torch.bool

# Modules whose classes may appear as *data* in a training snapshot; they become stubs.
DEFAULT_INERT_MODULES = ("omegaconf", "typing", "numpy", "pathlib", "argparse", "enum")


class InertObject:
    """Stand-in for a class we refuse to run: keeps constructor args and pickled state as plain data."""

    _qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # dict/list subclasses are rebuilt with SETITEMS/APPENDS after construction
    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


def _inert_class(module: str, name: str) -> type:
    return type(f"Inert_{name}", (InertObject,), {"_qualname": f"{module}.{name}"})


def make_pickle_module(source: str, inert_modules: tuple[str, ...], inert_globals: tuple[str, ...]) -> Any:
    """A stand-in for the ``pickle`` module whose Unpickler enforces the allow-list (``torch.load`` subclasses it)."""

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # protocol-2 pickles (torch.save's default) use Python 2 names such as __builtin__.dict
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if (module, name) in _ALLOWED:
                return _ALLOWED[(module, name)]
            qualname = f"{module}.{name}"
            if module.split(".")[0] in inert_modules or qualname in inert_globals:
                return _inert_class(module, name)
            raise UnsafeCheckpointError(
                f"{source}: refusing to load global {qualname!r}: it is not on the allow-list of a weights "
                "checkpoint, so the file may run code when unpickled. If you trust the file and this name is "
                "pure data, allow it as inert (stubbed, never executed) with --allow-data-class "
                f"{qualname}"
            )

    class Module:
        Unpickler = RestrictedUnpickler
        UnpicklingError = pickle.UnpicklingError
        __name__ = "yue_restricted_pickle"

        @staticmethod
        def load(f: Any, **kwargs: Any) -> Any:
            return RestrictedUnpickler(f, **kwargs).load()

    return Module


def restricted_torch_load(
    path: str | Path,
    *,
    inert_modules: tuple[str, ...] = DEFAULT_INERT_MODULES,
    inert_globals: tuple[str, ...] = (),
) -> Any:
    """``torch.load`` of ``path`` on CPU through the allow-list Unpickler; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"{path}: checkpoint file not found")
    module = make_pickle_module(str(path), tuple(inert_modules), tuple(inert_globals))
    try:
        return torch.load(path, map_location="cpu", pickle_module=module, weights_only=False)
    except UnsafeCheckpointError:
        raise
    # Corrupt pickles can also declare absurd lengths (OverflowError, or MemoryError when the length fits
    # but the allocation does not) or carry opcodes in the wrong order (IndexError, TypeError).
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        IndexError,
        TypeError,
        OverflowError,
        MemoryError,
    ) as e:
        raise CheckpointReadError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from e
