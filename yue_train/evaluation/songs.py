"""Songs to score, read from disk: the output folder of ``yue-infer generate`` (or of the evaluation inside
training: the same layout, ``report.json`` + ``songNN/``), or a folder of audio files and song folders
(a reference set: the user's training songs or a held-out set).

Metrics see 16 kHz mono waves (:class:`~yue_train.evaluation.metrics.base.SongAudio`); the report plays
the files as they are (the 44.1 kHz mix when the codec has upsamplers).

Confinement: every file read lies under the songs folder the user named. A ``report.json`` entry's ``dir``
and file names are resolved and must stay inside it; a symlink whose target lies outside is refused (one
line) unless ``follow_symlinks`` is set, and a walk visits each folder once, so links back to a parent
cannot make it loop. Audio longer than :data:`~yue_train.codec.audio_io.MAX_SONG_SECONDS` is refused in one
line naming the file, before it is decoded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.codec.audio_io import MAX_SONG_SECONDS, AudioError, load_audio
from yue_train.evaluation.metrics.base import SongAudio
from yue_train.format.bounded_json import JsonFileError, read_json_object
from yue_train.format.bounded_json import field as json_field
from yue_train.format.files import read_text_capped
from yue_train.format.npy import load_npy
from yue_train.lyrics.forms import SongError
from yue_train.lyrics.song_lyrics import FOLDER_NAMES, folder_lyrics

SAMPLE_RATE = 16_000
REPORT = "report.json"  # what yue_train.generation.song_folder writes
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")
# Players of a generated song, each the first file present: the final 44.1 kHz mix, else the 16 kHz one.
PLAYERS = {
    "mix": ("final", "mix_44k", "mix_16k"),
    "vocal": ("vocal_44k", "vocal_16k"),
    "inst": ("inst_44k", "inst_16k"),
}


# A song folder's files, by player: the files yue-prep build finds by these FOLDER_NAMES.
FOLDER_PLAYERS = {"mix": "mix", "vocal": "vocals", "inst": "instrumental"}


# Said in the report and by yue-eval for songs whose vocal_source is "mix".
NO_VOCAL_STEM = (
    "no vocal stem: the vocal metrics (pitch, range, activity, lyrics, voice) ran on the whole mix, "
    "accompaniment included; give the song a vocals.* stem for them to hear the voice alone"
)


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

    @property
    def vocal_source(self) -> str | None:
        """What the vocal metrics hear (:func:`~yue_train.evaluation.metrics.audio.vocal_or_mix`): ``"stem"``,
        the song's vocal track; ``"mix"``, the whole mix (no vocal stem); None without audio."""
        if not self.has_audio:
            return None
        return "stem" if self.audio.vocal is not None else "mix"


def _load(path: Path) -> np.ndarray:
    try:
        return load_audio(path, SAMPLE_RATE, allow_silent=True, max_seconds=MAX_SONG_SECONDS)
    except AudioError as e:
        raise SongLoadError(str(e)) from None


MAX_TEXT_BYTES = 1 << 20  # genre.txt, tags.txt: far more than a song's text


def confined(path: Path, root: Path, follow_symlinks: bool, what: str) -> Path:
    """``path`` when it resolves to a place under ``root`` (or anywhere, with ``follow_symlinks``); else a
    SongLoadError naming it."""
    resolved = path.resolve()
    if follow_symlinks or resolved.is_relative_to(root.resolve()):
        return path
    raise SongLoadError(
        f"{what} {path} leads outside the songs folder {root} (to {resolved}); pass --follow-symlinks to read it"
    )


def _generated_song(
    folder: Path, entry: Any, report: dict[str, Any], k: int, follow_symlinks: bool = False
) -> LoadedSong:
    where = f"{folder / REPORT}: songs[{k}]"
    try:
        name = json_field(entry, "dir", str, where, f"song{k:02d}")
        audio_names = json_field(entry, "audio", (dict, type(None)), where, None) or {}
        if not all(isinstance(p, str) for p in audio_names.values()):
            raise JsonFileError(f"{where}: 'audio' maps player names to file names (strings)")
        sampling = (
            report.get("sampling") or json_field(report, "options", dict, folder / REPORT, {}).get("sampling") or {}
        )
        if not isinstance(sampling, dict):
            raise JsonFileError(f"{folder / REPORT}: 'sampling' is not an object")
    except JsonFileError as e:
        raise SongLoadError(str(e)) from None
    if Path(name).name in ("", ".", ".."):
        raise SongLoadError(f"{where}: dir {name!r} names no song folder inside {folder}")
    song_folder = confined(folder / Path(name).name, folder, follow_symlinks, f"{where} dir")
    info = dict(entry)
    ids = song_folder / "stage1_ids.npy"
    if ids.is_file():
        try:
            info["stage1_ids"] = load_npy(confined(ids, folder, follow_symlinks, "codes"), "stage-1 ids")
        except ValueError as e:
            raise SongLoadError(str(e)) from None
    info.setdefault("max_new_tokens", sampling.get("max_new_tokens"))
    files = {n: song_folder / Path(p).name for n, p in audio_names.items()}
    files = {n: confined(p, folder, follow_symlinks, "audio") for n, p in files.items() if p.is_file()}
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


def load_generated(folder: str | Path, follow_symlinks: bool = False) -> list[LoadedSong]:
    """The songs of a ``yue-infer generate`` output folder (codes only, or codes and audio)."""
    folder = Path(folder)
    try:
        report = read_json_object(folder / REPORT)
    except JsonFileError as e:
        raise SongLoadError(str(e)) from None
    entries = report.get("songs")
    if not isinstance(entries, list) or not entries:
        raise SongLoadError(f"{folder / REPORT} lists no songs (is this a yue-infer generate output?)")
    songs = [_generated_song(folder, e, report, k, follow_symlinks) for k, e in enumerate(entries)]
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
    if found is None:
        return ""
    try:
        return read_text_capped(found, found.name, MAX_TEXT_BYTES, errors="replace").strip() + "\n"
    except ValueError as e:
        raise SongLoadError(str(e)) from None


def _song_folder(folder: Path, song_id: str, root: Path, follow_symlinks: bool) -> LoadedSong:
    """A song folder as ``yue-prep build`` reads them: ``mix.*`` (or ``mixture.*``, ``song.*``), optional
    ``vocals.*`` and ``instrumental.*`` stems, lyrics in any form build reads, and ``genre.txt``/``tags.txt``."""
    files = {player: _find(folder, FOLDER_NAMES[name]) for player, name in FOLDER_PLAYERS.items()}
    media = {k: confined(p, root, follow_symlinks, "audio") for k, p in files.items() if p is not None}
    try:
        lyrics = folder_lyrics(folder, lambda p: confined(p, root, follow_symlinks, "lyrics"))
    except SongError as e:
        raise SongLoadError(f"{folder}: {e}") from None
    audio = SongAudio(
        song_id,
        SAMPLE_RATE,
        _load(media["mix"]),
        vocal=_load(media["vocal"]) if "vocal" in media else None,
        inst=_load(media["inst"]) if "inst" in media else None,
        genres=_text(folder, ("genre.txt", "tags.txt")).strip(),
        lyrics=lyrics,
    )
    return LoadedSong(audio, media)


def _walk(folder: Path, root: Path, follow_symlinks: bool) -> Iterator[LoadedSong]:
    """Song folders and audio files under ``root``, each folder visited once (by device and inode); a
    linked folder is entered only with ``follow_symlinks``."""
    seen: set[tuple[int, int]] = set()
    stack = [(folder, "")]
    while stack:
        here, rel = stack.pop()
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        if _find(here, FOLDER_NAMES["mix"]) is not None:
            yield _song_folder(here, rel or here.name, root, follow_symlinks)
            continue
        below = []
        for p in sorted(here.iterdir()):
            if p.is_dir():
                if p.is_symlink():
                    confined(p, root, follow_symlinks, "folder")
                below.append((p, f"{rel}/{p.name}" if rel else p.name))
            elif p.suffix.lower() in AUDIO_SUFFIXES:
                confined(p, root, follow_symlinks, "audio")
                name = f"{rel}/{p.stem}" if rel else p.stem
                yield LoadedSong(SongAudio(name, SAMPLE_RATE, _load(p)), {"mix": p})
        stack.extend(reversed(below))  # sorted order, depth first


def load_audio_folder(folder: str | Path, follow_symlinks: bool = False) -> list[LoadedSong]:
    """The songs under ``folder`` (recursively, by name): each song folder (one holding ``mix.*``, see
    :func:`_song_folder`) is one song with its stems; every other audio file is one song, its mix only."""
    folder = Path(folder)
    songs = list(_walk(folder, folder, follow_symlinks))
    if not songs:
        raise SongLoadError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) and no {REPORT}")
    return songs


def load_songs(folder: str | Path, follow_symlinks: bool = False) -> list[LoadedSong]:
    """A generated-song folder when it holds ``report.json``, otherwise a folder of audio files.
    ``follow_symlinks``: read files that links inside the folder lead to wherever they lie."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SongLoadError(f"{folder}: no such folder")
    if (folder / REPORT).is_file():
        return load_generated(folder, follow_symlinks)
    return load_audio_folder(folder, follow_symlinks)
