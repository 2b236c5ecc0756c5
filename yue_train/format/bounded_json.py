"""The one reader for JSON files a user or a checkpoint supplies (reports, summaries, manifests, trainer
state, model and adapter configs): a size cap checked from ``os.stat`` before anything is read, a nesting
depth limit, finite numbers only, and one ``JsonFileError`` line naming the file for anything else.

Written by hand because ``json.loads`` alone raises RecursionError on deep nesting, turns ``1e999`` into
``inf`` and accepts ``NaN``/``Infinity``, and its callers then fail with KeyError or TypeError on missing
keys and wrong types. :func:`field` gives those one line too."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from yue_train.errors import first_line
from yue_train.format.files import SpecialFileError, check_regular_file

MAX_JSON_BYTES = 64 << 20  # the largest JSON file read (a report of many songs stays far below)
MAX_JSON_DEPTH = 64  # nesting of objects and lists


class JsonFileError(ValueError):
    """A JSON file that is missing, too large, not JSON, or not of the expected shape: one line naming it.
    ``syntax``: the text does not parse as JSON at all (the other refusals are of what it holds)."""

    def __init__(self, message: str, syntax: bool = False) -> None:
        super().__init__(message)
        self.syntax = syntax


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} does not fit a finite float")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads(text: str | bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``text`` parsed with finite numbers and at most ``max_depth`` levels; ``where`` names it in errors."""
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise JsonFileError(f"{where}: nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise JsonFileError(f"{where} is not valid JSON ({first_line(e)[:200]})", syntax=True) from None
    if _depth(value) > max_depth:
        raise JsonFileError(f"{where}: nested deeper than {max_depth} levels")
    return value


def read_json(path: str | Path, what: str | None = None, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:  # fmt: skip
    """The JSON value in ``path`` (a regular file of at most ``max_bytes``)."""
    path = Path(path)
    where = f"{what} {path}" if what else str(path)
    try:
        check_regular_file(path, what or path.name)
        size = path.stat().st_size
        if size > max_bytes:
            raise JsonFileError(f"{where}: {size:,} bytes, more than the {max_bytes:,} a JSON file may have here")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise JsonFileError(f"{where}: file not found") from None
    except SpecialFileError as e:
        raise JsonFileError(str(e)) from None
    except OSError as e:
        raise JsonFileError(f"{where}: cannot read it ({e.strerror or type(e).__name__})") from None
    if len(data) > max_bytes:
        raise JsonFileError(f"{where}: larger than the {max_bytes:,} bytes a JSON file may have here")
    return loads(data, where, max_depth)


def read_json_object(path: str | Path, what: str | None = None, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """:func:`read_json` of a file whose top level must be an object."""
    value = read_json(path, what, max_bytes)
    if not isinstance(value, dict):
        where = f"{what} {path}" if what else str(path)
        raise JsonFileError(f"{where}: holds a JSON {_kind(value)}, not an object")
    return value


_KINDS = {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}


def _kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def field(obj: Any, key: str, kind: type | tuple[type, ...], where: str | Path, default: Any = ...) -> Any:
    """``obj[key]`` checked to be of ``kind`` (``bool`` is not an ``int`` here); missing -> ``default`` when
    one is given, else a JsonFileError naming ``where`` and the key."""
    if not isinstance(obj, dict):
        raise JsonFileError(f"{where}: holds a JSON {_kind(obj)} where an object with {key!r} belongs")
    if key not in obj:
        if default is not ...:
            return default
        raise JsonFileError(f"{where}: has no {key!r}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        wanted = " or ".join(_KINDS.get(k, k.__name__) if k is not type(None) else "null" for k in kinds)
        raise JsonFileError(f"{where}: {key!r} is a {_kind(value)}, expected {wanted}")
    return value
