"""Lyrics as phoneme sequences, for ``lyrics_per``: the phoneme error rate of a transcript against lyrics.

- Latin-script words: their CMU-dictionary pronunciation (ARPAbet, no stress marks), from the dictionary that
  ships inside the pocketsphinx wheel (offline; ``g2p-en`` would fetch NLTK data on import). A word the
  dictionary lacks, or every word when pocketsphinx is not installed, counts as its letters.
- Chinese characters: pinyin with ``pypinyin``, each syllable as its initial and its final with tone
  (``好`` -> ``h``, ``ao3``), so a wrong tone is one edit and a wrong syllable two; without pypinyin, the
  characters themselves.
- Anything else (kana, hangul, ...): one unit per character.

Input is text already normalised by :func:`yue_train.evaluation.metrics.lyrics.normalize_text`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_RUNS = re.compile(r"[a-z']+|[\u3400-\u4dbf\u4e00-\u9fff]+|.", re.IGNORECASE)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@cache
def cmu_dictionary() -> dict[str, tuple[str, ...]]:
    """word -> phones (first pronunciation); empty when pocketsphinx is not installed."""
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        return {}
    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, phones = line.partition(" ")
        if "(" not in word and phones:
            words.setdefault(word, tuple(p.rstrip("012") for p in phones.split()))
    return words


def _pinyin_units(text: str) -> list[str]:
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError:
        return list(text)
    initials = lazy_pinyin(text, style=Style.INITIALS, strict=False)
    finals = lazy_pinyin(text, style=Style.FINALS_TONE3, strict=False, neutral_tone_with_five=True)
    return [u for pair in zip(initials, finals, strict=True) for u in pair if u]


def phonemes(text: str) -> list[str]:
    """The phoneme units of normalised lyrics text (see the module docstring)."""
    units: list[str] = []
    cmu = cmu_dictionary()
    for word in text.split():
        for run in _RUNS.findall(word):
            if _HAN.match(run):
                units += _pinyin_units(run)
            elif run[0].isascii() and run[0].isalpha() or run[0] == "'":
                letters = run.strip("'")
                units += list(cmu.get(run.lower(), ())) or list(letters.lower())
            else:
                units.append(run)
    return units
