"""The transcription step of ``yue-prep build --transcribe`` and ``yue-prep align --transcribe``: the vocal of a
song folder without lyrics (the stem, or separated from the mix) -> ``lyrics.transcribed.lrc`` in the folder
(:mod:`yue_train.lyrics.transcript`: timed lines, sections guessed from pauses and repetition).

Whisper is the ``lyrics_wer`` metric's transcriber (:func:`yue_train.evaluation.metrics.lyrics.whisper_transcriber`),
loaded once per process on first use; a hub id is fetched into the Hugging Face cache on first use, as the
aligner's weights are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from data_prep.songs import LoadOnce, SongError, SongSpec
from yue_train.errors import first_line
from yue_train.evaluation.metrics.base import MetricError
from yue_train.evaluation.metrics.lyrics import DEFAULT_MODEL as DEFAULT_WHISPER
from yue_train.evaluation.metrics.lyrics import RATE as WHISPER_RATE

WHISPER_FLAG = "--whisper"
GUESSED_LINE = "section labels [verse]/[chorus] of transcribed songs are guesses (pauses, repeated lines): check them"


class SongTranscriber:
    """Transcribes songs one by one with one Whisper model, loaded when the first song needs it."""

    def __init__(
        self, model: str = DEFAULT_WHISPER, language: str | None = None, device: str = "cpu", force: bool = False
    ) -> None:
        self.model, self.language, self.device, self.force = model, language, device, force
        self.whisper = LoadOnce("transcription", self._load, (MetricError, OSError, ImportError))

    def _load(self) -> Any:
        from yue_train.evaluation.metrics.lyrics import whisper_transcriber

        return whisper_transcriber(self.model, self.language, True, self.device, WHISPER_FLAG)

    def segments(self, audio: np.ndarray, sample_rate: int) -> list[tuple[float, float, str]]:
        whisper = self.whisper()
        try:
            return whisper.segments(audio, sample_rate)
        except (ValueError, RuntimeError) as e:  # one song Whisper cannot decode must not end a long build
            raise SongError(f"transcription failed: {type(e).__name__}: {first_line(e)}") from None

    def transcribe(self, spec: SongSpec, load_vocal: Callable[[int], np.ndarray]) -> dict[str, Any]:
        """Transcribe ``spec``'s vocal (``load_vocal(sample_rate)``, mono) unless its transcribed file is there;
        sets ``spec.lyrics_file``."""
        from yue_train.lyrics.transcript import TranscriptionError, transcribe_folder

        assert spec.transcript_lrc is not None
        try:
            result = transcribe_folder(
                spec.transcript_lrc, lambda: (load_vocal(WHISPER_RATE), WHISPER_RATE), self.segments, self.force
            )
        except TranscriptionError as e:
            raise SongError(f"transcription failed: {e}") from None
        spec.lyrics_file = result.lrc
        return result.report()


def transcription_line(info: dict[str, Any]) -> str:
    """One line on a song's transcription for the terminal."""
    if info["reused"]:
        return f"{info['lrc']} used as it is"
    return f"transcribed, {info['lines']} lines, sections {' '.join(info['sections'])} (guessed) -> {info['lrc']}"
