"""Options dataclasses that are also command lines. A field made with :func:`flag` carries its flag's help, so
:func:`add_flags` derives the parser from the dataclass, and :func:`options_from` builds the dataclass from
the parsed flags (a flag's ``dest`` is the field it sets): each option is declared once."""

from __future__ import annotations

import argparse
import types
from collections.abc import Collection
from dataclasses import MISSING, field, fields
from typing import Any, TypeVar, get_args, get_type_hints

T = TypeVar("T")


def flag(default: Any = MISSING, /, help: str = "", **argparse_options: Any) -> Any:
    """A dataclass field that is also the flag ``--field-name``: ``help`` is its help text, and
    ``argparse_options`` hold what the annotation does not say (``choices``, an ``action``, another ``flag``
    name, a ``default`` the command line gives in another form). A dict or list default is copied per instance."""
    meta = {"help": help, "argparse": argparse_options}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def add_flags(parser: argparse.ArgumentParser, options: type, names: Collection[str] | None = None) -> None:
    """A flag for each :func:`flag` field of ``options`` (of ``names`` only, when given), in field order. Its
    type is the annotation's (``X | None``: ``X``; ``bool``: a switch); a field without a default is a
    required flag."""
    hints = get_type_hints(options)
    for f in fields(options):
        if "argparse" not in f.metadata or (names is not None and f.name not in names):
            continue
        kw = dict(f.metadata["argparse"])
        name = kw.pop("flag", "--" + f.name.replace("_", "-"))
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):
            kind = next(t for t in get_args(kind) if t is not type(None))
        if kind is bool:
            kw.setdefault("action", "store_true")
        elif "action" not in kw:
            kw.setdefault("type", kind)
        if f.default is MISSING and f.default_factory is MISSING:
            kw["required"] = True
        else:
            kw.setdefault("default", f.default if f.default is not MISSING else f.default_factory())
        parser.add_argument(name, dest=f.name, help=f.metadata["help"], **kw)


def options_from(args: argparse.Namespace, options: type[T], **overrides: Any) -> T:
    """``options`` built from the flags whose ``dest`` names one of its fields, ``overrides`` taking
    precedence (for values a flag gives in another form)."""
    given = {f.name: getattr(args, f.name) for f in fields(options) if hasattr(args, f.name)}  # type: ignore[arg-type]
    return options(**{**given, **overrides})
