"""Acoustic models behind ``--aligner``: a transformers CTC model (any language) or pocketsphinx (English, offline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # light: build's option parsing reads the names below without loading numpy or torch
    from yue_train.lyrics.song_folder import Aligner

DEFAULT_CTC_MODEL = "MahmoudAshraf/mms-300m-1130-forced-aligner"
POCKETSPHINX = "pocketsphinx"
MIN_SCORE = 0.25  # a song aligned with a lower mean line score is not used without a human look


def load_aligner(name: str = DEFAULT_CTC_MODEL, device: str = "cpu", download: bool = True) -> Aligner:
    """``pocketsphinx``, or a transformers ``Wav2Vec2ForCTC`` hub id or local folder (fetched on first use
    when ``download``)."""
    if name == POCKETSPHINX:
        from yue_train.lyrics.backends.sphinx import SphinxAligner

        return SphinxAligner()
    from yue_train.lyrics.backends.ctc import CtcAligner

    return CtcAligner(name, device=device, download=download)
