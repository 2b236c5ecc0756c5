"""Songs to score, read from disk: the output folder of ``yue-infer generate`` (or of the evaluation inside
training: the same layout, ``report.json`` + ``songNN/``), or a folder of audio files and song folders
(a reference set: the user's training songs or a held-out set).

Metrics see 16 kHz mono waves (:class:`~yue_train.evaluation.metrics.base.SongAudio`); the report plays
the files as they are (the 44.1 kHz mix when the codec has upsamplers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.codec.audio_io import AudioError, load_audio
from yue_train.evaluation.metrics.base import SongAudio

SAMPLE_RATE = 16_000
REPORT = "report.json"  # what yue_train.generation.song_folder writes
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")
# Players of a generated song, each the first file present: the final 44.1 kHz mix, else the 16 kHz one.
PLAYERS = {
    "mix": ("final", "mix_44k", "mix_16k"),
    "vocal": ("vocal_44k", "vocal_16k"),
    "inst": ("inst_44k", "inst_16k"),
}


# A song folder's files (the names yue-prep build reads), by player.
SONG_FOLDER_FILES = {
    "mix": ("mix", "mixture"),
    "vocal": ("vocals", "vocal"),
    "inst": ("instrumental", "inst", "accompaniment"),
}


class SongLoadError(ValueError):
    """A folder that holds no songs to score; the message says what was expected."""


@dataclass
class LoadedSong:
    """A song to score (``audio``) and the files the report plays (``media``: player name -> file)."""

    audio: SongAudio
    media: dict[str, Path] = field(default_factory=dict)

    @property
    def has_audio(self) -> bool:
        return len(self.audio.mix) > 0


def _load(path: Path) -> np.ndarray:
    try:
        return load_audio(path, SAMPLE_RATE, allow_silent=True)
    except AudioError as e:
        raise SongLoadError(str(e)) from None


def _generated_song(folder: Path, entry: dict[str, Any], report: dict[str, Any], k: int) -> LoadedSong:
    song_folder = folder / Path(str(entry.get("dir", f"song{k:02d}"))).name
    info = dict(entry)
    ids = song_folder / "stage1_ids.npy"
    if ids.is_file():
        info["stage1_ids"] = np.load(ids)
    sampling = report.get("sampling") or report.get("options", {}).get("sampling") or {}
    info.setdefault("max_new_tokens", sampling.get("max_new_tokens"))
    files = {name: song_folder / Path(p).name for name, p in (entry.get("audio") or {}).items()}
    files = {name: p for name, p in files.items() if p.is_file()}
    mix = _load(files["mix_16k"]) if "mix_16k" in files else np.zeros(0, np.float32)
    vocal = _load(files["vocal_16k"]) if "vocal_16k" in files else None
    inst = _load(files["inst_16k"]) if "inst_16k" in files else None
    audio = SongAudio(
        id=str(entry.get("id") or song_folder.name),
        sample_rate=SAMPLE_RATE,
        mix=mix,
        vocal=vocal,
        inst=inst,
        genres=str(entry.get("genres") or ""),
        lyrics=str(entry.get("lyrics") or ""),
        info=info,
    )
    media = {
        p: files[next(n for n in names if n in files)] for p, names in PLAYERS.items() if files.keys() & set(names)
    }
    return LoadedSong(audio, media)


def load_generated(folder: str | Path) -> list[LoadedSong]:
    """The songs of a ``yue-infer generate`` output folder (codes only, or codes and audio)."""
    folder = Path(folder)
    try:
        report = json.loads((folder / REPORT).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SongLoadError(f"{folder / REPORT}: cannot read it ({e})") from None
    entries = report.get("songs") if isinstance(report, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SongLoadError(f"{folder / REPORT} lists no songs (is this a yue-infer generate output?)")
    songs = [_generated_song(folder, e, report, k) for k, e in enumerate(entries)]
    if len({s.audio.id for s in songs}) != len(songs):  # ids name the rows of the report: keep them apart
        for k, s in enumerate(songs):
            s.audio.id = f"{s.audio.id}-{k:02d}"
    return songs


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next(
        (p for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES and p.stem.lower() in names), None
    )


def _text(folder: Path, names: tuple[str, ...]) -> str:
    found = next((folder / n for n in names if (folder / n).is_file()), None)
    return found.read_text(encoding="utf-8", errors="replace").strip() + "\n" if found else ""


def _song_folder(folder: Path, song_id: str) -> LoadedSong:
    """A song folder as ``yue-prep build`` reads them: ``mix.*``, optional ``vocals.*`` and
    ``instrumental.*`` stems, ``lyrics.txt`` and ``genre.txt``/``tags.txt``."""
    files = {
        "mix": _find(folder, SONG_FOLDER_FILES["mix"]),
        "vocal": _find(folder, SONG_FOLDER_FILES["vocal"]),
        "inst": _find(folder, SONG_FOLDER_FILES["inst"]),
    }
    media = {k: p for k, p in files.items() if p is not None}
    audio = SongAudio(
        song_id,
        SAMPLE_RATE,
        _load(media["mix"]),
        vocal=_load(media["vocal"]) if "vocal" in media else None,
        inst=_load(media["inst"]) if "inst" in media else None,
        genres=_text(folder, ("genre.txt", "tags.txt")).strip(),
        lyrics=_text(folder, ("lyrics.txt",)),
    )
    return LoadedSong(audio, media)


def _walk(folder: Path, rel: str) -> Iterator[LoadedSong]:
    if _find(folder, SONG_FOLDER_FILES["mix"]) is not None:
        yield _song_folder(folder, rel or folder.name)
        return
    for p in sorted(folder.iterdir()):
        name = f"{rel}/{p.stem}" if rel else p.stem
        if p.is_dir():
            yield from _walk(p, f"{rel}/{p.name}" if rel else p.name)
        elif p.suffix.lower() in AUDIO_SUFFIXES:
            yield LoadedSong(SongAudio(name, SAMPLE_RATE, _load(p)), {"mix": p})


def load_audio_folder(folder: str | Path) -> list[LoadedSong]:
    """The songs under ``folder`` (recursively, by name): each song folder (one holding ``mix.*``, see
    :func:`_song_folder`) is one song with its stems; every other audio file is one song, its mix only."""
    folder = Path(folder)
    songs = list(_walk(folder, ""))
    if not songs:
        raise SongLoadError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) and no {REPORT}")
    return songs


def load_songs(folder: str | Path) -> list[LoadedSong]:
    """A generated-song folder when it holds ``report.json``, otherwise a folder of audio files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SongLoadError(f"{folder}: no such folder")
    return load_generated(folder) if (folder / REPORT).is_file() else load_audio_folder(folder)
