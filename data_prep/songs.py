"""The input of ``yue-prep build``: songs as people have them, validated, and turned into official records.

A song is a folder (or a line of a JSONL manifest with the same keys, paths relative to the manifest)::

    my_song/
        song.json         optional: {"id", "tags", "mix", "vocals", "instrumental", "lyrics", "sections", ...}
        mix.wav           required (any of AUDIO_TYPES)
        vocals.wav        optional stems; both are needed unless vocal separation is on
        instrumental.wav
        tags.txt          optional: tags separated by commas or newlines (or "tags" in song.json)
        lyrics.lrc | lyrics.json | sections.json | sections.csv | lyrics.txt (plain, aligned by --align)

Lyrics with section labels come in one of three forms:

(a) the official segmented form: JSON ``{"segmented_lyrics": [{"codec_frame_start", "codec_frame_end",
    "line_content": "[verse]\\n..."}]}`` (frames already at 50 frames/s; ``line_content`` kept verbatim);
(b) sections with times in seconds: JSON ``[{"start", "end", "label", "lyrics"}]`` (or ``{"sections": [...]}``)
    or CSV with the header ``start,end,label,lyrics`` (times as seconds or ``mm:ss.xx``);
(c) LRC: ``[mm:ss.xx] line`` lyrics with ``[verse]`` / ``[chorus]`` markers (optionally timestamped). A
    section starts at its marker's time, else at its first timed line, and ends where the next one starts;
    the last ends at the audio's end or at an ``[mm:ss.xx][end]`` marker. Timed lines before the first
    marker (a downloaded LRC has no markers at all) form a ``[verse]`` section.

Plain lyrics (``lyrics.txt``: lines, ``[verse]`` markers at best, no times) are aligned to the vocal by
``yue-prep align`` or ``build --align`` into ``lyrics.aligned.lrc`` beside them, which is then read as (c);
an existing aligned file (checked or corrected by hand) is used as it is.

A song folder with no lyrics at all is transcribed from its vocal by ``--transcribe`` (Whisper) into
``lyrics.transcribed.lrc`` in the folder, read as (c) too, its ``[verse]`` / ``[chorus]`` labels guessed; an
existing transcribed file is used as it is, with or without ``--transcribe``.

Times become codec frames at 50 frames/s: frame k covers [k/50, (k+1)/50) s, so a boundary at t seconds is
frame floor(50 t) (the official preprocessing truncates the same way).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yue_train.format import codec_layout as cl
from yue_train.format.bounded_json import JsonFileError, read_json
from yue_train.format.bounded_json import loads as json_loads
from yue_train.format.files import read_bytes_capped
from yue_train.lyrics.paths import aligned_lrc_path, transcribed_lrc_path

AUDIO_TYPES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".webm")
LYRICS_TYPES = (".lrc", ".json", ".csv")
PLAIN_TYPES = (".txt",)  # plain lyrics: no times until aligned
MAX_LYRICS_BYTES = 1 << 20  # a song's lyrics file: a few KB
MAX_TIME_S = 100 * 3600  # a time in lyrics past this is damage (and 1e308 s would overflow a frame index)
STEMS = ("vocals", "instrumental")
# Sections whose label says "no singing" may have empty lyrics; every other section must have words.
INSTRUMENTAL_LABELS = frozenset(
    {"intro", "outro", "inst", "instrumental", "interlude", "break", "solo", "silence", "end", "pause"}
)
MAX_STEM_DIFF_S = 0.2  # stems longer apart than this are not the same song's stems
END_TOLERANCE_S = 0.1  # a section may end this far past the audio (rounding in hand-made timings); clamped
# 0.58 * 50 = 28.999999999999996 in floating point: nudge before truncating so decimal times land on
# the frame they name. 1e-6 frames is far below any timing precision anyone writes.
_FRAME_EPS = 1e-6

MIX_NAMES = ("mix", "mixture", "song")
# The file names (stems, case-insensitive) a song folder's files are found by.
FOLDER_NAMES = {
    "mix": MIX_NAMES,
    "vocals": ("vocals", "vocal"),
    "instrumental": ("instrumental", "inst", "accompaniment"),
    "lyrics": ("lyrics", "sections"),
    "tags": ("tags",),
}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL_RE = re.compile(r"^\[([A-Za-z][A-Za-z0-9 _-]*)\]")
_LRC_TIME_RE = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_LRC_NEGATIVE_RE = re.compile(r"\[\s*-\s*\d+\s*:")  # [-00:05.00]: before the song starts
_LRC_TIMELIKE_RE = re.compile(r"\[\s*\d[^\]]*:[^\]]*\]")  # [1:2:3:4], [9999999:00]: not a time we read
_LRC_META_RE = re.compile(r"^\[[A-Za-z]+:[^\]]*\]$")  # [ti:Title], [ar:Artist], [length:03:20]


class SongError(ValueError):
    """A song that cannot be built; the message says why (it goes to the build summary)."""


def seconds_to_frame(seconds: float) -> int:
    """The frame a time falls in at 50 frames/s: 0.0 -> 0, 0.019 -> 0, 0.02 -> 1, 10.0 -> 500."""
    return int(math.floor(seconds * cl.FRAMES_PER_SECOND + _FRAME_EPS))


def segment_text(label: str, lyrics: str) -> str:
    """The official ``line_content`` of a section: ``"[label]\\n<lines>\\n\\n"`` (``"[label]\\n\\n"`` if empty)."""
    body = lyrics.strip()
    return f"[{label}]\n{body}\n\n" if body else f"[{label}]\n\n"


def is_instrumental(label: str) -> bool:
    return label.strip().lower() in INSTRUMENTAL_LABELS


@dataclass(frozen=True)
class Section:
    """A labelled span of a song. Times in seconds (forms b, c) or frames (form a); ``end`` None = audio end."""

    label: str
    lyrics: str
    start: float | None = None
    end: float | None = None
    frame_start: int | None = None
    frame_end: int | None = None
    line_content: str | None = None  # form (a): the official text, kept verbatim

    @property
    def text(self) -> str:
        return self.line_content if self.line_content is not None else segment_text(self.label, self.lyrics)


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


# --------------------------------------------------------------------------------------------------
# Lyrics parsing
# --------------------------------------------------------------------------------------------------


def parse_time(value: Any, where: str) -> float:
    """Seconds from a number or an ``[hh:]mm:ss[.xx]`` string."""
    if isinstance(value, bool):
        raise SongError(f"{where}: time {value!r} is not a number")
    if isinstance(value, (int, float)):
        t = float(value)
    elif isinstance(value, str) and value.strip():
        parts = value.strip().split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            raise SongError(f"{where}: time {value!r} is not seconds or mm:ss.xx") from None
        if len(nums) > 3:
            raise SongError(f"{where}: time {value!r} is not seconds or mm:ss.xx")
        t = 0.0
        for n in nums:
            t = t * 60 + n
    else:
        raise SongError(f"{where}: time {value!r} is missing or not a number")
    if not math.isfinite(t) or t < 0:
        raise SongError(f"{where}: time {value!r} is negative or not finite")
    if t > MAX_TIME_S:
        raise SongError(f"{where}: time {value!r} is past {MAX_TIME_S:,} s, longer than any song")
    return t


def _label_of(line_content: str, where: str) -> tuple[str, str]:
    m = _LABEL_RE.match(line_content.lstrip())
    if not m:
        raise SongError(f"{where}: line_content does not start with a [label] (got {line_content[:30]!r})")
    return m.group(1), line_content.lstrip()[m.end() :]


def parse_official(data: Any, where: str) -> list[Section]:
    """Form (a): ``{"segmented_lyrics": [...]}``, ``{"splitted_lyrics": {...}}`` or the bare list."""
    if isinstance(data, dict) and "splitted_lyrics" in data:
        data = data["splitted_lyrics"]
    if isinstance(data, dict):
        data = data.get("segmented_lyrics")
    if not isinstance(data, list) or not data:
        raise SongError(f"{where}: segmented_lyrics is missing or empty")
    out = []
    for i, seg in enumerate(data):
        w = f"{where}: segment {i}"
        if not isinstance(seg, dict):
            raise SongError(f"{w} is not an object")
        content = seg.get("line_content")
        if not isinstance(content, str):
            raise SongError(f"{w}: line_content is missing or not text")
        fs, fe = seg.get("codec_frame_start"), seg.get("codec_frame_end")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (fs, fe)):
            raise SongError(f"{w}: codec_frame_start/codec_frame_end must be integers")
        label, lyrics = _label_of(content, w)
        out.append(Section(label, lyrics.strip(), frame_start=fs, frame_end=fe, line_content=content))
    return out


def _section_from_fields(row: dict[str, Any], where: str, last: bool) -> Section:
    label = row.get("label")
    if not isinstance(label, str) or not _LABEL_RE.match(f"[{label.strip()}]"):
        raise SongError(f"{where}: label {label!r} is missing or not a word like verse/chorus")
    lyrics = row.get("lyrics", "")
    if lyrics is None:
        lyrics = ""
    if isinstance(lyrics, list):
        lyrics = "\n".join(str(x) for x in lyrics)
    if not isinstance(lyrics, str):
        raise SongError(f"{where}: lyrics must be text or a list of lines")
    start = parse_time(row.get("start"), f"{where} start")
    raw_end = row.get("end")
    # The last section may leave its end open (= the audio's end); any other needs one.
    end = None if last and raw_end in (None, "") else parse_time(raw_end, f"{where} end")
    return Section(label.strip(), lyrics.strip(), start=start, end=end)


def parse_sections(rows: Any, where: str) -> list[Section]:
    """Form (b) after loading: a list of ``{start, end, label, lyrics}``."""
    if isinstance(rows, dict) and "sections" in rows:
        rows = rows["sections"]
    if not isinstance(rows, list) or not rows:
        raise SongError(f"{where}: no sections (expected a list of {{start, end, label, lyrics}})")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SongError(f"{where}: section {i} is not an object")
        out.append(_section_from_fields(row, f"{where}: section {i}", last=i == len(rows) - 1))
    return out


def parse_sections_csv(text: str, where: str) -> list[Section]:
    reader = csv.DictReader(io.StringIO(text))
    need = {"start", "end", "label"}
    try:
        header = {h.strip().lower() for h in reader.fieldnames or []}
        if not need <= header:
            raise SongError(f"{where}: CSV header must have start,end,label[,lyrics]; got {reader.fieldnames}")
        rows = [{(k or "").strip().lower(): v for k, v in row.items()} for row in reader]
    except csv.Error as e:  # a field over csv's limit, a NUL byte
        raise SongError(f"{where}: not a readable CSV ({e})") from None
    return parse_sections(rows, where)


def parse_lrc(text: str, where: str) -> list[Section]:
    """Form (c). Lines before the first marker, markers with no time at all, and lines with several
    timestamps (LRC's shorthand for repeats: the section they belong to would be ambiguous) are errors."""
    sections: list[dict[str, Any]] = []
    end_time: float | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (_LRC_META_RE.match(line) and not _LRC_TIME_RE.match(line)):
            continue
        times = []
        while m := _LRC_TIME_RE.match(line):
            times.append(int(m.group(1)) * 60 + float(m.group(2).replace(":", ".")))
            line = line[m.end() :].lstrip()
        if len(times) > 1:
            raise SongError(f"{where}:{line_no}: a line with {len(times)} timestamps; write repeated lines out")
        if _LRC_NEGATIVE_RE.match(line):
            raise SongError(f"{where}:{line_no}: a negative timestamp; times count from the start of the song (0:00)")
        if bad := _LRC_TIMELIKE_RE.match(line):  # it would become lyric text
            raise SongError(f"{where}:{line_no}: timestamp {bad.group(0)[:40]} is not [mm:ss.xx] (at most 999 minutes)")
        t = times[0] if times else None
        marker = _LABEL_RE.fullmatch(line)
        if marker:
            label = marker.group(1).strip()
            if label.lower() == "end":
                if t is None:
                    raise SongError(f"{where}:{line_no}: [end] needs a timestamp")
                end_time = t
                continue
            sections.append({"label": label, "start": t, "lines": [], "line": line_no})
            continue
        if not sections:
            if not (line and times):
                continue
            sections.append({"label": "verse", "start": t, "lines": [], "line": line_no})
        current = sections[-1]
        if current["start"] is None and t is not None:
            current["start"] = t
        if line:
            current["lines"].append(line)
    if not sections:
        raise SongError(
            f"{where}: no [verse]/[chorus]-style section markers and no timed lines (plain lyrics without times "
            "go in lyrics.txt and are aligned with --align)"
        )
    out = []
    for i, s in enumerate(sections):
        if s["start"] is None:
            raise SongError(f"{where}:{s['line']}: section [{s['label']}] has no time (no timestamp and no timed line)")
        end = sections[i + 1]["start"] if i + 1 < len(sections) else end_time
        out.append(Section(s["label"], "\n".join(s["lines"]), start=s["start"], end=end))
    return out


def load_lyrics_file(path: Path) -> list[Section]:
    suffix = path.suffix.lower()
    if suffix not in LYRICS_TYPES:
        raise SongError(
            f"lyrics: unknown file type {suffix or '(none)'!r} of {path.name} (use {', '.join(LYRICS_TYPES)})"
        )
    try:
        text = read_bytes_capped(path, "lyrics", MAX_LYRICS_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise SongError(f"lyrics: file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise SongError(f"lyrics: {path.name} is not UTF-8 text ({e.reason})") from None
    except (OSError, ValueError) as e:
        raise SongError(str(e)) from None
    if suffix == ".lrc":
        return parse_lrc(text, path.name)
    if suffix == ".csv":
        return parse_sections_csv(text, path.name)
    try:
        data = json_loads(text, f"lyrics: {path.name}")
    except JsonFileError as e:
        raise SongError(str(e)) from None
    return parse_inline(data, path.name)


def parse_inline(data: Any, where: str) -> list[Section]:
    """JSON lyrics of form (a) or (b), told apart by their keys."""
    is_official = isinstance(data, dict) and ("segmented_lyrics" in data or "splitted_lyrics" in data)
    if isinstance(data, list) and data and isinstance(data[0], dict) and "line_content" in data[0]:
        is_official = True
    return parse_official(data, where) if is_official else parse_sections(data, where)


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


def _find_one(folder: Path, stems: tuple[str, ...]) -> Path | None:
    # Any non-folder entry counts (a FIFO too): the song is then refused for what the entry is, not as missing.
    found = sorted(
        p for p in folder.iterdir() if not p.is_dir() and p.stem.lower() in stems and p.name.lower() != "song.json"
    )
    if len(found) > 1:
        raise SongError(f"several candidates for {stems[0]}: {', '.join(p.name for p in found)}; name one in song.json")
    return found[0] if found else None


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
    inline = [k for k in ("sections", "segmented_lyrics", "splitted_lyrics") if k in data]
    if inline:
        spec.inline_lyrics = {k: data[k] for k in inline}
        return
    lyr = data.get("lyrics", found.get("lyrics") and found["lyrics"].name)  # type: ignore[union-attr]
    if lyr is None:
        if folder is not None and (transcribe or transcribed_lrc_path(folder).is_file()):
            spec.transcript_lrc = transcribed_lrc_path(folder)
            spec.lyrics_file = spec.transcript_lrc if spec.transcript_lrc.is_file() else None
            return
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
        spec.plain_lyrics = path
        aligned = aligned_lrc_path(path)
        spec.lyrics_file = aligned if aligned.is_file() else None
        return
    spec.lyrics_file = path
    if path.suffix.lower() not in LYRICS_TYPES:
        raise SongError(
            f"lyrics: unknown file type {path.suffix or '(none)'!r} of {path.name} "
            f"(use {', '.join(LYRICS_TYPES + PLAIN_TYPES)})"
        )


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
                found[key] = _find_one(folder, names)
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


def _read_song_json(folder: Path) -> dict[str, Any]:
    path = folder / "song.json"
    if not path.exists():
        return {}
    try:
        data = read_json(path, "song.json", MAX_LYRICS_BYTES)
    except JsonFileError as e:
        raise SongError(str(e)) from None
    except (OSError, ValueError) as e:
        raise SongError(str(e)) from None
    if not isinstance(data, dict):
        raise SongError("song.json must hold a JSON object")
    return data


def _is_song_folder(folder: Path) -> bool:
    return (folder / "song.json").exists() or any(_is_mix_name(p) for p in folder.iterdir())


def _is_mix_name(path: Path) -> bool:
    return path.stem.lower() in MIX_NAMES and path.name.lower() != "song.json"


SONG_LAYOUT = (
    "each song is a folder with its mix (mix.* or song.*, e.g. song.mp3), lyrics (lyrics.txt, lyrics.lrc, ...) "
    "and tags.txt; vocals.* and instrumental.* stems optional"
)


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
    folders = [path] if _is_song_folder(path) else sorted(p for p in path.iterdir() if p.is_dir())
    if not folders:
        audio = sorted(p.name for p in path.iterdir() if p.suffix.lower() in AUDIO_TYPES)
        what = (
            f"{len(audio)} audio file(s) ({', '.join(audio[:3])}{', ...' if len(audio) > 3 else ''})"
            if audio
            else "no song"
        )
        raise ValueError(f"--input {path}: {what} but no song folder: {SONG_LAYOUT}")
    excl = exclude.resolve() if exclude is not None else None
    specs = []
    for folder in folders:
        if folder.name.startswith(".") or (excl is not None and folder.resolve() == excl):
            continue
        index = len(specs)
        outside = None if follow_symlinks else _outside(folder, path, "song folder")
        if outside is not None:
            specs.append(SongSpec(index, folder.name, str(folder), error=outside))
            continue
        if not _is_song_folder(folder):
            specs.append(
                SongSpec(
                    index,
                    folder.name,
                    str(folder),
                    error=f"not a song folder: no song.json and no {'/'.join(MIX_NAMES)}.* audio ({SONG_LAYOUT})",
                )
            )
            continue
        try:
            data = _read_song_json(folder)
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
    if spec.lyrics_file is None and spec.transcript_lrc is not None:
        raise SongError("no lyrics: transcribe the vocal with --transcribe, or add lyrics.txt or timed lyrics")
    if spec.lyrics_file is None and spec.plain_lyrics is not None:
        raise SongError(
            f"{spec.plain_lyrics.name} has no times: align it to the vocal with --align "
            f"(or `yue-prep align {spec.plain_lyrics.parent}`), or give timed lyrics (LRC, sections)"
        )
    if spec.inline_lyrics is not None:
        inline = spec.inline_lyrics
        data = inline.get("sections", inline)
        sections = parse_inline(data, "song.json lyrics")
    else:
        assert spec.lyrics_file is not None
        sections = load_lyrics_file(spec.lyrics_file)
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
