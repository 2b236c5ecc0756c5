"""The one-line form of an error, for messages that quote what a library raised."""

from __future__ import annotations


def first_line(e: BaseException) -> str:
    """The first non-blank line of ``e``'s message, stripped; the exception's type name when it has none."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[0] if lines else type(e).__name__
