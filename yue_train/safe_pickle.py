"""Every pickle the project reads goes through one allowlist: data in, never code.

A pickle rebuilds objects by calling the globals it names, so loading one with ``pickle.load`` or
``torch.load(weights_only=False)`` runs whatever a planted file names (``os.system``, a class with a
``__reduce__``). An :class:`Allowlist` is the set of qualified names a kind of file may name; three things
use it, so each reader checks the same list:

* :meth:`Allowlist.unpickler`: an Unpickler whose ``find_class`` returns only listed globals, stubs the
  inert ones (:class:`InertObject`, which records its arguments and runs none of the original class's
  code) and refuses anything else with :class:`UnsafeCheckpointError` before it can be called;
* :func:`restricted_torch_load`: ``torch.load`` of a file through that Unpickler;
* :func:`refused_globals`: the names a torch file's pickles hold beyond the list, read with
  ``pickletools`` (nothing is built or run), so a checkpoint is refused before any loader touches it,
  DeepSpeed's own loaders included.

:data:`PLAIN_DATA` is what ``torch.save`` of tensors, numbers, strings and containers names; the readers
add what their files hold beyond that (DCP's metadata records, DeepSpeed's loss scaler, the official codec
snapshot's omegaconf objects as inert data). Written by hand because torch's ``weights_only`` allowlist
cannot stub a whole module's classes as data and has no way to check a file without loading it.

Sizes are bounded by the file: a few permitted names allocate by a number they are given (``bytes(n)``,
``bytearray(n)``, ``torch.Tensor(n)``, a storage class, ``_rebuild_from_type_v2`` calling one of them), so a
44-byte pickle could ask for gigabytes. The Unpickler hands these out as :class:`_SizeGuard`s that refuse
(:class:`OversizedPickleError`) a size larger than the file holds; ``_codecs.encode`` (how protocol 2
stores bytes) takes text only, so bytes-to-bytes codecs cannot be chained to double a value at each step.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file names a global that is not on the allowlist (``qualname``)."""

    def __init__(self, message: str, qualname: str) -> None:
        super().__init__(message)
        self.qualname = qualname


class OversizedPickleError(pickle.UnpicklingError):
    """A permitted constructor called with a size larger than the file being read holds."""


class CheckpointReadError(ValueError):
    """The file is missing, truncated or not a pickle of the expected kind."""


def _plain_data() -> frozenset[str]:
    names = {
        "collections.OrderedDict",
        "collections.defaultdict",  # its factory comes through this same filter
        "_codecs.encode",  # how protocol 2 stores bytes
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Tensor",
        "torch.nn.parameter.Parameter",
        "torch.Size",
        "torch.device",
        "torch.serialization._get_layout",  # a layout's name -> torch.layout
    }
    names |= {f"builtins.{t.__name__}" for t in (dict, list, tuple, set, frozenset, int, float, complex)}
    names |= {f"builtins.{t.__name__}" for t in (str, bytes, bytearray, bool, slice)}
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), (torch.dtype, torch.layout, torch.memory_format)):
            names.add(f"torch.{name}")
    names |= {f"{s.__module__}.{s.__name__}" for s in torch._storage_classes}  # the storage type of each tensor
    return frozenset(names)


PLAIN_DATA = _plain_data()


# Permitted names that allocate by a number they are given; the Unpickler returns them wrapped in a _SizeGuard.
_SIZED = frozenset(
    {"builtins.bytes", "builtins.bytearray", "torch.Tensor", "torch.nn.parameter.Parameter"}
    | {f"{s.__module__}.{s.__name__}" for s in torch._storage_classes}
)


def _claimed(real: Any, args: tuple, kwargs: dict) -> int:
    """The number of entries a call of constructor ``real`` asks for: bytes/bytearray take a count as
    their first argument; tensor and storage types take sizes as integers or sequences of integers."""
    if real in (bytes, bytearray):
        return args[0] if args and isinstance(args[0], int) else 0
    claimed, sized = 1, False
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool):
            claimed, sized = claimed * value, True
        elif isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
            for v in value:
                claimed *= v
            sized = True
    return claimed if sized else 0


class _SizeGuard:
    """A permitted constructor (``real``) that refuses a size beyond ``limit`` (the file's bytes)."""

    def __init__(self, real: Any, qualname: str, limit: int, source: str) -> None:
        self.real, self.qualname, self.limit, self.source = real, qualname, limit, source

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        claimed = _claimed(self.real, args, kwargs)
        if abs(claimed) > self.limit:
            raise OversizedPickleError(
                f"{self.source}: {self.qualname}() is asked for {claimed:,} entries, more than the file's "
                f"{self.limit:,} bytes can hold; refused (damaged or planted)"
            )
        return self.real(*args, **kwargs)


def _real(value: Any) -> Any:
    return value.real if isinstance(value, _SizeGuard) else value


def _text_encode(source: str) -> Any:
    import _codecs

    def encode(obj: Any, *args: Any) -> Any:
        if not isinstance(obj, str):
            raise OversizedPickleError(f"{source}: _codecs.encode of a {type(obj).__name__}, not text; refused")
        return _codecs.encode(obj, *args)

    return encode


def _rebuild_from_type(source: str) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` with its type argument unwrapped (torch compares and
    subclasses it) and its constructor argument left guarded (torch calls it with the pickle's args)."""
    from torch._tensor import _rebuild_from_type_v2

    def rebuild(func: Any, new_type: Any, args: Any, state: Any) -> Any:
        return _rebuild_from_type_v2(func, _real(new_type), args, state)

    return rebuild


def _normalise(module: str, name: str) -> tuple[str, str]:
    """Protocol-2 pickles (torch.save's default) spell Python 3 names the Python 2 way (``__builtin__.dict``)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


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


@dataclass(frozen=True)
class Allowlist:
    """``names``: qualified globals a file may name. ``inert``: modules (with their submodules) or qualified
    names whose classes load as :class:`InertObject`. ``hint``: said after a refusal (``{qualname}``: the refused name)."""

    names: frozenset[str] = PLAIN_DATA
    inert: tuple[str, ...] = ()
    hint: str = "Do not load a file you did not write"

    def with_names(self, extra: Iterable[str]) -> Allowlist:
        return Allowlist(self.names | frozenset(extra), self.inert, self.hint)

    def _is_inert(self, module: str, qualname: str) -> bool:
        return qualname in self.inert or any(module == m or module.startswith(f"{m}.") for m in self.inert)

    def permits(self, qualname: str) -> bool:
        module = qualname.rpartition(".")[0]
        return qualname in self.names or self._is_inert(module, qualname)

    def refusal(self, source: str, qualname: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(
            f"{source}: refusing to load global {qualname!r}: it is not on the allowlist of this file, so the "
            f"file may run code when unpickled. {self.hint.format(qualname=qualname)}",
            qualname,
        )

    def unpickler(self, source: str, limit: int) -> type[pickle.Unpickler]:
        """An Unpickler of ``source`` whose constructors allocate at most ``limit`` (its size in bytes)."""
        allow = self

        class RestrictedUnpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                module, name = _normalise(module, name)
                qualname = f"{module}.{name}"
                if qualname in allow.names:
                    if qualname == "_codecs.encode":
                        return _text_encode(source)
                    if qualname == "torch._tensor._rebuild_from_type_v2":
                        return _rebuild_from_type(source)
                    found = super().find_class(module, name)
                    return _SizeGuard(found, qualname, limit, source) if qualname in _SIZED else found
                if allow._is_inert(module, qualname):
                    return type(f"Inert_{name}", (InertObject,), {"_qualname": qualname})
                raise allow.refusal(source, qualname)

            # torch.load sets this to its storage loader, which compares the storage type it is given
            # with ``torch.UntypedStorage``: it gets the real class, not the guard. Kept on the instance
            # (where Pythons that look the loader up at each call find it) and, where the C Unpickler has
            # a slot for it (3.11), set there too.
            @property
            def persistent_load(self) -> Any:
                try:
                    return self.__dict__["_persistent_load"]
                except KeyError:
                    raise AttributeError("persistent_load") from None

            @persistent_load.setter
            def persistent_load(self, load: Any) -> None:
                def unwrapped(pid: Any) -> Any:
                    return load(tuple(_real(v) for v in pid) if isinstance(pid, tuple) else pid)

                self.__dict__["_persistent_load"] = unwrapped
                slot = pickle.Unpickler.__dict__.get("persistent_load")
                if hasattr(slot, "__set__"):
                    slot.__set__(self, unwrapped)

        return RestrictedUnpickler


def restricted_load(data: bytes, allow: Allowlist, source: str) -> Any:
    """A plain pickle through ``allow``."""
    return allow.unpickler(source, len(data))(io.BytesIO(data)).load()


def _pickle_module(allow: Allowlist, source: str, limit: int) -> Any:
    """A stand-in for the ``pickle`` module (``torch.load`` subclasses its Unpickler)."""

    class Module:
        Unpickler = allow.unpickler(source, limit)
        UnpicklingError = pickle.UnpicklingError
        __name__ = "yue_restricted_pickle"

        @staticmethod
        def load(f: Any, **kwargs: Any) -> Any:
            return Module.Unpickler(f, **kwargs).load()

    return Module


def restricted_torch_load(path: str | Path, allow: Allowlist = Allowlist(), map_location: Any = "cpu") -> Any:
    """``torch.load`` of ``path`` through ``allow``'s Unpickler; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointReadError(f"{path}: missing")
    module = _pickle_module(allow, str(path), path.stat().st_size)
    try:
        return torch.load(path, map_location=map_location, pickle_module=module, weights_only=False)
    except UnsafeCheckpointError:
        raise
    except OversizedPickleError as e:
        raise CheckpointReadError(str(e)) from None
    except Exception as e:  # noqa: BLE001 (a damaged file: absurd lengths, opcodes out of order, no zip, ...)
        raise CheckpointReadError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:200]})") from e


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_NO_PUSH = {"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP"}


def pickle_globals(data: bytes) -> list[str]:
    """The qualified names a pickle's GLOBAL/STACK_GLOBAL/INST opcodes name, read without building anything.
    A name that cannot be told statically (an extension code, strings built on the stack) is ``"?"``."""
    found: list[str] = []
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # the value of each push, strings only (None for anything else)
    for op, arg, _ in pickletools.genops(data):
        if op.name in _STRINGS:
            pushed.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1] if pushed else None
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(int(arg)))
        elif op.name in ("GLOBAL", "INST"):
            found.append(".".join(_normalise(*str(arg).split(" ", 1))))
            pushed.append(None)
        elif op.name == "STACK_GLOBAL":
            module, name = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
            ok = isinstance(module, str) and isinstance(name, str)
            found.append(".".join(_normalise(module, name)) if ok else "?")
            pushed.append(None)
        elif op.name.startswith("EXT"):
            found.append("?")
        elif op.name not in _NO_PUSH:
            pushed.append(None)
    return found


def refused_globals(path: str | Path, allow: Allowlist) -> list[str]:
    """The names a torch file's pickles hold that ``allow`` does not permit (nothing is loaded or run);
    :class:`CheckpointReadError` when the file is not a readable torch zip file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            pickles = [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
        names = [g for data in pickles for g in pickle_globals(data)]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise CheckpointReadError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:200]})") from None
    if not pickles:
        raise CheckpointReadError(f"{path}: unreadable (no pickle inside)")
    return sorted({g for g in names if not allow.permits(g)})
