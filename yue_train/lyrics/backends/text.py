"""Lyrics text as an acoustic model's tokens: lower-cased words, romanized when the model's alphabet needs it."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

_ASIDE_RE = re.compile(r"\([^)]*\)|\[[^\]]*\]")


def words(text: str) -> list[str]:
    """The words of a lyrics line: asides in brackets dropped, lower-cased, punctuation other than ' removed."""
    text = _ASIDE_RE.sub(" ", text).lower()
    cleaned = "".join(c if c.isalnum() or c == "'" or c.isspace() else " " for c in text)
    return cleaned.split()


def needs_romanization(text: str) -> bool:
    """True when ``text`` has letters outside the Latin script."""
    return any(c.isalpha() and "LATIN" not in unicodedata.name(c, "") for c in text)


@cache
def _uroman() -> Any:
    try:
        import uroman
    except ImportError:
        raise ImportError(
            "lyrics in a non-Latin script need uroman to be romanized for the aligner: "
            "pip install uroman  (the 'align' extra of yue-train)"
        ) from None
    return uroman.Uroman()  # loads its tables once (several seconds)


def romanize(text: str) -> str:
    return str(_uroman().romanize_string(text))


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
