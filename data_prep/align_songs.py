"""The alignment step of ``yue-prep build --align`` and ``yue-prep align``: a song's plain lyrics.txt and its
vocal (the stem, or separated from the mix) -> ``lyrics.aligned.lrc`` beside the lyrics
(:mod:`yue_train.lyrics.song_folder`). One aligner per process, loaded on first use. ``yue-prep align
--transcribe`` also transcribes the song folders without lyrics (:mod:`data_prep.transcribe_songs`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.separate import DEFAULT_MODEL
from data_prep.songs import LoadOnce, SongError, SongSpec, discover
from data_prep.transcribe_songs import SongTranscriber
from yue_train.lyrics.backends import MIN_SCORE
from yue_train.lyrics.paths import alignment_csv_path


def load_vocal(
    spec: SongSpec, sample_rate: int, separate: str, separator: Callable[[], Any], purpose: str = "align the lyrics to"
) -> np.ndarray:
    """The vocal to align lyrics to (or to transcribe: ``purpose`` says which, for the message when there is
    none): the stem, else separated from the mix (``separator()``) when separation is on."""
    from yue_train.codec.audio_io import MAX_SONG_SECONDS, AudioError, load_audio

    try:
        if spec.stems["vocals"] is not None:
            return load_audio(spec.stems["vocals"], sample_rate, allow_silent=True, max_seconds=MAX_SONG_SECONDS)
    except AudioError as e:
        raise SongError(str(e)) from None
    if separate == "off":
        raise SongError(f"no vocal stem to {purpose}: add vocals.wav to the song or pass --separate demucs")
    if spec.mix is None:
        raise SongError("no mix audio to separate the vocal from")
    return separator().separate(str(spec.mix), sample_rate)[0]


@dataclass
class AlignOutcome:
    """``yue-prep align``'s result for one song: the alignment's report, or why there is none."""

    spec: SongSpec
    info: dict[str, Any] | None = None
    error: str | None = None
    transcribed: bool = False  # info is a transcription's report (the song had no lyrics)


def align_inputs(
    inputs: list[Path], aligner: str, separate: str = "off", device: str = "cpu", force: bool = False,
    min_score: float = MIN_SCORE, transcriber: SongTranscriber | None = None,
    separation_model: str = DEFAULT_MODEL, follow_symlinks: bool = False,
) -> list[AlignOutcome]:  # fmt: skip
    """Align the plain lyrics of every song under ``inputs`` (song folders, folders of them, .jsonl manifests),
    and with ``transcriber`` transcribe the song folders that have no lyrics. Songs with timed lyrics are
    reported with an error saying so; the other problems of a song (tags, say) are for ``build`` and do not
    stop its alignment."""
    from data_prep.separate import check_available, separation_cache

    check_available(separate)
    song_aligner = SongAligner(aligner, device, min_score, force)
    cache = separation_cache(separation_model, device)

    def separator() -> Any:
        return cache

    outcomes = []
    for path in inputs:
        for spec in discover(path, transcribe=transcriber is not None, follow_symlinks=follow_symlinks):
            if transcriber is not None and spec.transcript_lrc is not None:
                try:
                    info = transcriber.transcribe(
                        spec, lambda rate, spec=spec: load_vocal(spec, rate, separate, separator, "transcribe")
                    )
                    outcomes.append(AlignOutcome(spec, info, transcribed=True))
                except SongError as e:
                    outcomes.append(AlignOutcome(spec, error=str(e), transcribed=True))
                continue
            if spec.plain_lyrics is None:
                outcomes.append(AlignOutcome(spec, error=spec.error or "no plain lyrics.txt to align (timed already)"))
                continue
            if force:
                spec.lyrics_file = None
            try:
                if spec.lyrics_file is not None:
                    info = {"lrc": str(spec.lyrics_file), "reused": True, "accepted": True}
                else:
                    info = song_aligner.align(spec, lambda rate, spec=spec: load_vocal(spec, rate, separate, separator))
                outcomes.append(AlignOutcome(spec, info))
            except SongError as e:
                outcomes.append(AlignOutcome(spec, error=str(e)))
    return outcomes


class SongAligner:
    def __init__(self, name: str, device: str = "cpu", min_score: float = MIN_SCORE, force: bool = False) -> None:
        self.name, self.device, self.min_score, self.force = name, device, min_score, force
        self.aligner = LoadOnce("lyrics alignment", self._load, (OSError, ImportError))

    def _load(self) -> Any:
        from yue_train.lyrics.backends import load_aligner

        return load_aligner(self.name, self.device)

    def align(self, spec: SongSpec, load_vocal: Callable[[int], np.ndarray]) -> dict[str, Any]:
        """Align ``spec``'s plain lyrics (``load_vocal(sample_rate)``: its vocal, mono); sets ``spec.lyrics_file``."""
        from yue_train.lyrics.align import AlignmentError
        from yue_train.lyrics.song_folder import align_folder

        assert spec.plain_lyrics is not None
        aligner = self.aligner()
        try:
            result = align_folder(
                spec.plain_lyrics, load_vocal(aligner.sample_rate), aligner, self.force, self.min_score
            )
        except AlignmentError as e:
            raise SongError(f"lyrics alignment failed: {e}") from None
        if not result.accepted:
            assert result.alignment is not None
            raise SongError(
                f"lyrics alignment confidence {result.alignment.score:.2f} is below {self.min_score}: check "
                f"{result.lrc.name} against the song ({alignment_csv_path(spec.plain_lyrics).name} lists each line's "
                f"score) and rename it to {spec.plain_lyrics.stem}.aligned.lrc to use it"
            )
        spec.lyrics_file = result.lrc
        return result.report()
