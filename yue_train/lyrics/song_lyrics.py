"""Where a song folder's files and lyrics are: the names ``yue-prep build`` finds them by, and its lyrics read
in any of the forms :mod:`yue_train.lyrics.forms` reads.

A song folder holds its mix (``mix.*``, ``mixture.*`` or ``song.*``), optional ``vocals.*`` and
``instrumental.*`` stems, ``tags.txt`` and its lyrics: ``lyrics.lrc`` / ``lyrics.json`` / ``sections.json`` /
``sections.csv`` (timed), or ``lyrics.txt`` (plain, timed by alignment into ``lyrics.aligned.lrc``), or
``"sections"`` / ``"segmented_lyrics"`` / a ``"lyrics"`` path inside an optional ``song.json``, or, with none
of those, ``lyrics.transcribed.lrc`` (``--transcribe``: the vocal transcribed, labels guessed). Build needs
the times; evaluation needs only the words (:func:`lyrics_text`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yue_train.format.bounded_json import JsonFileError, read_json
from yue_train.lyrics.forms import (
    LYRICS_TYPES,
    MAX_LYRICS_BYTES,
    PLAIN_TYPES,
    Section,
    SongError,
    load_lyrics_file,
    parse_inline,
    read_lyrics_text,
    segment_text,
)
from yue_train.lyrics.paths import aligned_lrc_path, transcribed_lrc_path
from yue_train.lyrics.plain import parse_plain

SONG_JSON = "song.json"
MIX_NAMES = ("mix", "mixture", "song")
# The file names (stems, case-insensitive) a song folder's files are found by.
FOLDER_NAMES = {
    "mix": MIX_NAMES,
    "vocals": ("vocals", "vocal"),
    "instrumental": ("instrumental", "inst", "accompaniment"),
    "lyrics": ("lyrics", "sections"),
    "tags": ("tags",),
}
INLINE_KEYS = ("sections", "segmented_lyrics", "splitted_lyrics")


def find_named(folder: Path, stems: tuple[str, ...]) -> Path | None:
    """The one file of ``folder`` whose stem is one of ``stems`` (case-insensitive); several is an error.
    Any non-folder entry counts (a FIFO too): the song is then refused for what the entry is, not as missing."""
    found = sorted(
        p for p in folder.iterdir() if not p.is_dir() and p.stem.lower() in stems and p.name.lower() != SONG_JSON
    )
    if len(found) > 1:
        raise SongError(f"several candidates for {stems[0]}: {', '.join(p.name for p in found)}; name one in song.json")
    return found[0] if found else None


def is_mix_name(path: Path) -> bool:
    return path.stem.lower() in MIX_NAMES and path.name.lower() != SONG_JSON


def is_song_folder(folder: Path) -> bool:
    return (folder / SONG_JSON).exists() or any(is_mix_name(p) for p in folder.iterdir())


def read_song_json(folder: Path) -> dict[str, Any]:
    """The object in ``folder/song.json``; {} when there is none."""
    path = folder / SONG_JSON
    if not path.exists():
        return {}
    try:
        data = read_json(path, SONG_JSON, MAX_LYRICS_BYTES)
    except (JsonFileError, OSError, ValueError) as e:
        raise SongError(str(e)) from None
    if not isinstance(data, dict):
        raise SongError("song.json must hold a JSON object")
    return data


@dataclass
class LyricsSource:
    """Where a song's lyrics are: inline (song.json or a manifest line), a timed file, or a plain
    ``lyrics.txt`` (``file`` is then its aligned LRC once there is one)."""

    inline: dict[str, Any] | None = None
    file: Path | None = None
    plain: Path | None = None
    transcript: Path | None = None  # no lyrics: where --transcribe writes them (``file`` once it is there)


def lyrics_source(
    data: dict[str, Any], base: Path, found: Path | None, folder: Path | None = None, transcribe: bool = False
) -> LyricsSource:
    """The lyrics that song.json / manifest keys ``data`` name, else the file ``found`` in the folder, else
    (a song folder only) its transcription: an existing ``lyrics.transcribed.lrc``, or where ``transcribe``
    will write it."""
    inline = [k for k in INLINE_KEYS if k in data]
    if inline:
        return LyricsSource(inline={k: data[k] for k in inline})
    lyr = data.get("lyrics", found and found.name)
    if lyr is None:
        if folder is not None and (transcribe or transcribed_lrc_path(folder).is_file()):
            transcript = transcribed_lrc_path(folder)
            return LyricsSource(file=transcript if transcript.is_file() else None, transcript=transcript)
        how = (
            "or pass --transcribe to transcribe the vocal" if folder is not None else "--transcribe needs a song folder"
        )
        raise SongError(
            f"no lyrics (lyrics.txt, lyrics.lrc, lyrics.json or sections.csv, or 'lyrics' in song.json; {how})"
        )
    if not isinstance(lyr, str):
        raise SongError("'lyrics' must be a file path (put inline lyrics under 'sections')")
    path = Path(lyr)
    path = path if path.is_absolute() else base / path
    if path.suffix.lower() in PLAIN_TYPES:
        aligned = aligned_lrc_path(path)
        return LyricsSource(file=aligned if aligned.is_file() else None, plain=path)
    if path.suffix.lower() not in LYRICS_TYPES:
        raise SongError(
            f"lyrics: unknown file type {path.suffix or '(none)'!r} of {path.name} "
            f"(use {', '.join(LYRICS_TYPES + PLAIN_TYPES)})"
        )
    return LyricsSource(file=path)


def read_sections(source: LyricsSource) -> list[Section]:
    """The timed sections of ``source``; plain lyrics not yet aligned have none (an error saying how to align)."""
    if source.inline is not None:
        return parse_inline(source.inline.get("sections", source.inline), "song.json lyrics")
    if source.file is None and source.transcript is not None:
        raise SongError("no lyrics: transcribe the vocal with --transcribe, or add lyrics.txt or timed lyrics")
    if source.file is None:
        assert source.plain is not None
        raise SongError(
            f"{source.plain.name} has no times: align it to the vocal with --align "
            f"(or `yue-prep align {source.plain.parent}`), or give timed lyrics (LRC, sections)"
        )
    return load_lyrics_file(source.file)


def lyrics_text(source: LyricsSource) -> str:
    """The words of ``source`` as ``[label]`` blocks of lines, without times: the text ``yue-infer generate``
    takes as lyrics. Plain lyrics not yet aligned are read as they are."""
    if source.inline is None and source.file is None and source.plain is not None:
        blocks = parse_plain(read_lyrics_text(source.plain))
        return "".join(segment_text(b.label, "\n".join(b.lines)) for b in blocks).strip() + "\n"
    return "".join(s.text for s in read_sections(source)).strip() + "\n"


def folder_lyrics(folder: Path, check: Callable[[Path], object] = Path) -> str:
    """A song folder's lyrics as :func:`lyrics_text` gives them; "" when it has none. ``check`` sees each
    lyrics file before it is read (evaluation refuses files outside the songs folder)."""
    data = read_song_json(folder)
    found = find_named(folder, FOLDER_NAMES["lyrics"])
    named = found is not None or "lyrics" in data or INLINE_KEYS & data.keys()
    if not named and not transcribed_lrc_path(folder).is_file():
        return ""
    source = lyrics_source(data, folder, found, folder)
    for path in (source.file, source.plain):
        if path is not None:
            check(path)
    return lyrics_text(source)
