"""Options dataclasses from parsed command lines: a flag's ``dest`` is the field it sets, so each option is
declared as a flag and a field, with no copy between them."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def options_from(args: argparse.Namespace, options: type[T], **overrides: Any) -> T:
    """``options`` built from the flags whose ``dest`` names one of its fields, ``overrides`` taking
    precedence (for values a flag gives in another form)."""
    given = {f.name: getattr(args, f.name) for f in fields(options) if hasattr(args, f.name)}  # type: ignore[arg-type]
    return options(**{**given, **overrides})
