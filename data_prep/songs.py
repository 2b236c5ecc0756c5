"""The input of ``yue-prep build``: songs as people have them, validated, and turned into official records.

A song is a folder (or a line of a JSONL manifest with the same keys, paths relative to the manifest)::

    my_song/
        song.json         optional: {"id", "tags", "mix", "vocals", "instrumental", "lyrics", "sections", ...}
        mix.wav           required: mix.*, mixture.* or song.* (any of AUDIO_TYPES)
        vocals.wav        optional stems; both are needed unless vocal separation is on
        instrumental.wav
        tags.txt          tags separated by commas or newlines (or "tags" in song.json)
        lyrics.lrc | lyrics.json | sections.json | sections.csv | lyrics.txt (plain, aligned by --align)

Lyrics with times come in the forms :mod:`yue_train.lyrics.forms` reads (official segmented JSON, sections
JSON or CSV, LRC); yue-eval reads them with the same code.

Plain lyrics (``lyrics.txt``: lines, ``[verse]`` markers at best, no times) are aligned to the vocal by
``yue-prep align`` or ``build --align`` into ``lyrics.aligned.lrc`` beside them, which is then read as LRC;
an existing aligned file (checked or corrected by hand) is used as it is.

A song folder with no lyrics at all is transcribed from its vocal by ``--transcribe`` (Whisper) into
``lyrics.transcribed.lrc`` in the folder, read as LRC too, its ``[verse]`` / ``[chorus]`` labels guessed; an
existing transcribed file is used as it is, with or without ``--transcribe``.

Times become codec frames at 50 frames/s: frame k covers [k/50, (k+1)/50) s, so a boundary at t seconds is
frame floor(50 t) (the official preprocessing truncates the same way).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yue_train.format import codec_layout as cl
from yue_train.format.files import read_bytes_capped
from yue_train.lyrics.forms import MAX_LYRICS_BYTES, Section, SongError, is_instrumental
from yue_train.lyrics.song_lyrics import (
    FOLDER_NAMES,
    MIX_NAMES,
    LyricsSource,
    find_named,
    is_song_folder,
    lyrics_source,
    read_sections,
    read_song_json,
)

AUDIO_TYPES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".webm")
STEMS = ("vocals", "instrumental")
MAX_STEM_DIFF_S = 0.2  # stems longer apart than this are not the same song's stems
END_TOLERANCE_S = 0.1  # a section may end this far past the audio (rounding in hand-made timings); clamped
# 0.58 * 50 = 28.999999999999996 in floating point: nudge before truncating so decimal times land on
# the frame they name. 1e-6 frames is far below any timing precision anyone writes.
_FRAME_EPS = 1e-6

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class LoadOnce:
    """A model the songs share, loaded by ``load()`` when the first song needs it. A load that fails with one of
    ``errors`` is remembered: every later song gets the same :class:`SongError` (``what: reason``) at once,
    without retrying a download."""

    def __init__(self, what: str, load: Callable[[], Any], errors: tuple[type[BaseException], ...]) -> None:
        self.what, self._load, self._errors = what, load, errors
        self._value: Any = None
        self._error: str | None = None

    def __call__(self) -> Any:
        if self._error is not None:
            raise SongError(self._error)
        if self._value is None:
            try:
                self._value = self._load()
            except self._errors as e:
                self._error = f"{self.what}: {e}"
                raise SongError(self._error) from None
        return self._value


def seconds_to_frame(seconds: float) -> int:
    """The frame a time falls in at 50 frames/s: 0.0 -> 0, 0.019 -> 0, 0.02 -> 1, 10.0 -> 500."""
    return int(math.floor(seconds * cl.FRAMES_PER_SECOND + _FRAME_EPS))


@dataclass
class SongSpec:
    """One song of the input, with paths resolved; ``error`` set when it cannot even be described."""

    index: int  # position in the input: the order of the manifest and of every merge
    id: str
    source: str  # folder or manifest line, for messages
    mix: Path | None = None
    stems: dict[str, Path | None] = field(default_factory=lambda: dict.fromkeys(STEMS))
    tags: list[str] = field(default_factory=list)
    lyrics_file: Path | None = None
    inline_lyrics: Any = None  # "sections" / "segmented_lyrics" given inside song.json or the manifest line
    plain_lyrics: Path | None = None  # lyrics.txt without times (lyrics_file is its aligned LRC once there is one)
    transcript_lrc: Path | None = None  # no lyrics: where the transcription goes (lyrics_file once it is there)
    error: str | None = None

    def input_files(self) -> list[Path]:
        files = [self.mix, *self.stems.values(), self.lyrics_file]
        return [p for p in files if p is not None]


def check_lyrics(sections: list[Section]) -> None:
    """Audio-independent checks: vocal sections have words, no section is empty or overlaps another."""
    for i, s in enumerate(sections):
        if not s.lyrics.strip() and not is_instrumental(s.label):
            raise SongError(
                f"section {i} [{s.label}] has empty lyrics; a sung section needs its words (label it "
                f"intro, outro, inst, interlude, break or solo if it has none)"
            )
    timed = [(s.start, s.end) if s.frame_start is None else (s.frame_start, s.frame_end) for s in sections]
    unit = "s" if sections[0].frame_start is None else "frames"
    for i, (a, b) in enumerate(timed):
        if b is not None and b <= a:
            raise SongError(f"section {i} [{sections[i].label}] is empty or reversed: {a}..{b} {unit}")
        if i and a < timed[i - 1][0]:
            raise SongError(f"sections are not in time order: section {i} starts before section {i - 1}")
        if i and timed[i - 1][1] is not None and a < timed[i - 1][1] - (_FRAME_EPS if unit == "s" else 0):
            prev = sections[i - 1]
            raise SongError(
                f"sections overlap: [{prev.label}] ends at {timed[i - 1][1]} {unit} but [{sections[i].label}] "
                f"starts at {a} {unit}"
            )


def frame_spans(sections: list[Section], n_frames: int, duration_s: float) -> list[tuple[int, int]]:
    """(frame_start, frame_end) of each section on codes of ``n_frames`` frames from ``duration_s`` of audio.

    A section ending up to END_TOLERANCE_S past the audio is clamped to the last frame; further out, or a
    section starting at or after the audio's end, is an error.
    """
    spans = []
    tol_frames = seconds_to_frame(END_TOLERANCE_S)
    for i, s in enumerate(sections):
        if s.frame_start is not None:
            fs, fe = s.frame_start, s.frame_end
            end_desc = f"frame {fe}"
        else:
            fs = seconds_to_frame(s.start)
            fe = n_frames if s.end is None else seconds_to_frame(s.end)
            end_desc = "the audio's end" if s.end is None else f"{s.end:.2f} s"
        assert fe is not None
        if fs >= n_frames or fe > n_frames + tol_frames:
            raise SongError(
                f"section {i} [{s.label}] ends at {end_desc} (frame {fe}), beyond the audio: {duration_s:.2f} s = "
                f"{n_frames} frames"
            )
        if fe < fs:
            raise SongError(f"section {i} [{s.label}] ends at {end_desc} (frame {fe}), before it starts (frame {fs})")
        spans.append((fs, min(fe, n_frames)))
    return spans


# --------------------------------------------------------------------------------------------------
# Discovery: folders / manifest -> SongSpec
# --------------------------------------------------------------------------------------------------


def _audio_path(value: Any, base: Path, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise SongError(f"{what}: expected a file path, got {value!r}")
    path = Path(value)
    path = path if path.is_absolute() else base / path
    if path.suffix.lower() not in AUDIO_TYPES:
        raise SongError(
            f"{what}: unknown audio file type {path.suffix or '(none)'!r} of {path.name} (use {', '.join(AUDIO_TYPES)})"
        )
    return path


def _read_text(path: Path, what: str) -> str:
    """A small UTF-8 text file of a song (checked to be a regular file first: a FIFO would block; at most
    ``MAX_LYRICS_BYTES``, checked before reading)."""
    try:
        return read_bytes_capped(path, what, MAX_LYRICS_BYTES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise SongError(f"{what}: {path.name} is not UTF-8 text ({e.reason})") from None
    except (OSError, ValueError) as e:
        raise SongError(str(e)) from None


def _tags(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        parts = re.split(r"[,\n]", value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        raise SongError(f"{what}: tags must be a comma-separated string or a list of strings")
    return [p.strip() for p in parts if p.strip()]


def _resolve_audio(spec: SongSpec, data: dict[str, Any], base: Path, found: dict[str, Path | None]) -> None:
    mix = data.get("mix", found.get("mix") and found["mix"].name)
    if mix is None:
        raise SongError(f"no mix audio (a {'/'.join(MIX_NAMES)}.* file such as song.mp3, or 'mix' in song.json)")
    spec.mix = _audio_path(mix, base, "mix")


def _resolve_stem(spec: SongSpec, stem: str, data: dict[str, Any], base: Path, found: dict[str, Path | None]) -> None:
    value = data.get(stem, found.get(stem) and found[stem].name)  # type: ignore[union-attr]
    spec.stems[stem] = None if value is None else _audio_path(value, base, stem)


def _resolve_tags(spec: SongSpec, data: dict[str, Any], found: dict[str, Path | None]) -> None:
    tags_file = found.get("tags")
    if "tags" in data or "genres" in data:
        spec.tags = _tags(data.get("tags", data.get("genres")), "tags")
    elif tags_file is not None:
        spec.tags = _tags(_read_text(tags_file, "tags"), tags_file.name)
    if not spec.tags:
        raise SongError("no tags (genre, instrument, mood, gender, timbre): add 'tags' to song.json or a tags.txt")


def _resolve_lyrics(
    spec: SongSpec,
    data: dict[str, Any],
    base: Path,
    found: dict[str, Path | None],
    folder: Path | None,
    transcribe: bool,
) -> None:
    source = lyrics_source(data, base, found.get("lyrics"), folder, transcribe)
    spec.inline_lyrics, spec.lyrics_file, spec.plain_lyrics = source.inline, source.file, source.plain
    spec.transcript_lrc = source.transcript


FOLLOW_HINT = "pass --follow-symlinks to read files outside --input"


def _outside(path: Path, root: Path, what: str) -> str | None:
    """The problem of ``path`` (a file a song reads) when it resolves to a place outside ``root``."""
    resolved = path.resolve()
    if resolved.is_relative_to(root.resolve()):
        return None
    return f"{what} {path} leads outside --input {root} (to {resolved}); {FOLLOW_HINT}"


def _outside_files(data: dict[str, Any], base: Path, found: dict[str, Path | None], root: Path) -> str | None:
    """The first file a song folder's song would read (found by name, or named in its song.json) outside ``root``."""
    named = {k: base / v for k in ("mix", *STEMS, "lyrics") if isinstance(v := data.get(k), str) and v}
    for key, path in {**{k: v for k, v in found.items() if v is not None}, **named}.items():
        problem = _outside(path, root, key)
        if problem:
            return problem
    return None


def resolve_spec(
    index: int,
    data: dict[str, Any],
    base: Path,
    source: str,
    folder: Path | None,
    transcribe: bool = False,
    confine_to: Path | None = None,
) -> SongSpec:
    """Fill a SongSpec from song.json / manifest keys, then (for folders) from the conventional file names.
    Every problem of the song is found, and ``error`` lists them all (one run shows the user everything).
    ``transcribe``: a song folder without lyrics is no problem (its vocal will be transcribed).
    ``confine_to``: the song is refused, nothing of it read, when a file it names leads outside that folder."""
    default_id = folder.name if folder is not None else None
    sid = data.get("id", default_id)
    spec = SongSpec(index=index, id=str(sid) if sid is not None else f"#{index}", source=source)
    problems: list[str] = []
    if sid is None:
        problems.append("no 'id'")
    elif not isinstance(sid, (str, int)) or isinstance(sid, bool) or not _ID_RE.match(str(sid)):
        problems.append(f"id {sid!r} is not usable as a file name (letters, digits, . _ -; at most 128)")
    found: dict[str, Path | None] = {}
    if folder is not None:
        for key, names in FOLDER_NAMES.items():
            try:
                found[key] = find_named(folder, names)
            except SongError as e:
                problems.append(str(e))
    if confine_to is not None and (outside := _outside_files(data, base, found, confine_to)):
        spec.error = outside
        return spec
    steps = [
        lambda: _resolve_audio(spec, data, base, found),
        *(lambda stem=stem: _resolve_stem(spec, stem, data, base, found) for stem in STEMS),
        lambda: _resolve_tags(spec, data, found),
        lambda: _resolve_lyrics(spec, data, base, found, folder, transcribe),
    ]
    for step in steps:
        try:
            step()
        except SongError as e:
            problems.append(str(e))
    resolved = [*spec.input_files(), spec.plain_lyrics] if confine_to is not None else []
    if outside := next((x for p in resolved if p is not None and (x := _outside(p, confine_to, "file"))), None):
        problems = [outside]  # the lyrics beside (lyrics.aligned.lrc) are found only now
    if problems:
        spec.error = "; ".join(problems)
    return spec


SONG_LAYOUT = (
    "each song is a folder with its mix (mix.* or song.*, e.g. song.mp3), lyrics (lyrics.txt, lyrics.lrc, ...) "
    "and tags.txt; vocals.* and instrumental.* stems optional"
)


def _audio_files(folder: Path) -> str:
    """``"2 audio file(s) (a.mp3, b.mp3)"`` for the audio files right in ``folder``; "" when it has none."""
    audio = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in AUDIO_TYPES and not p.is_dir())
    return f"{len(audio)} audio file(s) ({', '.join(audio[:3])}{', ...' if len(audio) > 3 else ''})" if audio else ""


def discover(
    input_path: str | Path, exclude: Path | None = None, transcribe: bool = False, follow_symlinks: bool = False
) -> list[SongSpec]:
    """SongSpecs of a song folder, a folder of song folders (sorted by name) or a JSONL manifest; ``transcribe``:
    song folders without lyrics are kept for transcription.

    A song of a folder input reads only files under that folder: a song folder or file that is a symlink
    leading out of it, or a song.json path outside it, makes the song rejected with the reason, unless
    ``follow_symlinks``. The walk is one level deep, so a link back to a parent cannot make it loop."""
    path = Path(input_path)
    if path.is_file():
        if path.suffix.lower() != ".jsonl":
            raise ValueError(f"--input {path}: a file input must be a .jsonl manifest of songs")
        return _from_manifest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: no such folder or manifest")
    excl = exclude.resolve() if exclude is not None else None
    folders = (
        [path]
        if is_song_folder(path)
        else sorted(
            p
            for p in path.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (excl is None or p.resolve() != excl)
        )
    )
    if not folders:
        raise ValueError(f"--input {path}: {_audio_files(path) or 'nothing'} but no song folder: {SONG_LAYOUT}")
    specs = []
    for folder in folders:
        index = len(specs)
        outside = None if follow_symlinks else _outside(folder, path, "song folder")
        if outside is not None:
            specs.append(SongSpec(index, folder.name, str(folder), error=outside))
            continue
        if not is_song_folder(folder):
            audio = _audio_files(folder)
            has = f"; it has {audio}: name the mix song.* or mix.*" if audio else ""
            error = f"not a song folder: no song.json and no {'/'.join(MIX_NAMES)}.* audio{has} ({SONG_LAYOUT})"
            specs.append(SongSpec(index, folder.name, str(folder), error=error))
            continue
        try:
            data = read_song_json(folder)
        except SongError as e:
            specs.append(SongSpec(index, folder.name, str(folder), error=str(e)))
            continue
        confine = None if follow_symlinks else path
        specs.append(resolve_spec(index, data, folder, str(folder), folder, transcribe, confine))
    return specs


def _from_manifest(path: Path) -> list[SongSpec]:
    specs = []
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            source = f"{path.name}:{line_no}"
            index = len(specs)
            try:
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                specs.append(
                    SongSpec(index, f"line {line_no}", source, error=f"line {line_no} is not a JSON object ({e})")
                )
                continue
            specs.append(resolve_spec(index, data, path.parent, source, None))
    return specs


def mark_duplicates(specs: list[SongSpec]) -> None:
    """A later song with an id already used is rejected (its outputs would overwrite the first one's)."""
    first: dict[str, SongSpec] = {}
    for spec in specs:
        if spec.error is not None:
            continue
        if spec.id in first:
            spec.error = f"duplicate song id {spec.id!r} (first used by {first[spec.id].source})"
        else:
            first[spec.id] = spec


def load_sections(spec: SongSpec) -> list[Section]:
    source = LyricsSource(spec.inline_lyrics, spec.lyrics_file, spec.plain_lyrics, spec.transcript_lrc)
    sections = read_sections(source)
    check_lyrics(sections)
    return sections


# --------------------------------------------------------------------------------------------------
# Official record
# --------------------------------------------------------------------------------------------------


def official_record(
    song_id: str,
    sections: list[Section],
    tags: list[str],
    n_frames: int,
    duration_s: float,
    code_paths: dict[str, str],
) -> dict[str, Any]:
    """The official manifest record (``code_paths``: codec, vocals_codec, instrumental_codec, relative)."""
    spans = frame_spans(sections, n_frames, duration_s)
    segments, msa = [], []
    for s, (fs, fe) in zip(sections, spans, strict=True):
        # Seconds as the user gave them (form a: from frames), the end clamped to the audio; the official
        # loader derives ICL prompt windows and segment durations from these.
        start = s.start if s.start is not None else fs / cl.FRAMES_PER_SECOND
        end = s.end if s.end is not None and s.frame_start is None else fe / cl.FRAMES_PER_SECOND
        end = min(end, duration_s)
        segments.append(
            {
                "offset": round(start, 4),
                "duration": round(end - start, 4),
                "codec_frame_start": fs,
                "codec_frame_end": fe,
                "line_content": s.text,
            }
        )
        msa.append({"start": round(start, 4), "end": round(end, 4), "label": s.label})
    return {
        "id": song_id,
        **code_paths,
        "audio_length_in_sec": round(duration_s, 4),
        "msa": msa,
        "genres": ", ".join(tags),
        "splitted_lyrics": {"segmented_lyrics": segments},
    }
