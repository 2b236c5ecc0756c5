"""The timed lyrics forms a song comes with, read into labelled :class:`Section` s.

(a) the official segmented form: JSON ``{"segmented_lyrics": [{"codec_frame_start", "codec_frame_end",
    "line_content": "[verse]\\n..."}]}`` (frames at 50 frames/s; ``line_content`` kept verbatim);
(b) sections with times in seconds: JSON ``[{"start", "end", "label", "lyrics"}]`` (or ``{"sections": [...]}``)
    or CSV with the header ``start,end,label,lyrics`` (times as seconds or ``mm:ss.xx``);
(c) LRC: ``[mm:ss.xx] line`` lyrics, with or without ``[verse]`` / ``[chorus]`` markers (optionally timed).
    A section starts at its marker's time, else at its first timed line, and ends where the next one
    starts; the last ends at the audio's end or at an ``[mm:ss.xx][end]`` marker. Timed lines before the
    first marker (a downloaded LRC has no markers at all) form a ``[verse]`` section.

``yue-prep build`` turns them into training records and ``yue-eval`` reads a song folder's lyrics with
them: one reader, so both see the same lyrics.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yue_train.format.bounded_json import JsonFileError
from yue_train.format.bounded_json import loads as json_loads
from yue_train.format.files import read_bytes_capped

LYRICS_TYPES = (".lrc", ".json", ".csv")
PLAIN_TYPES = (".txt",)  # plain lyrics: no times until aligned
MAX_LYRICS_BYTES = 1 << 20  # a song's lyrics file: a few KB
MAX_TIME_S = 100 * 3600  # a time in lyrics past this is damage (and 1e308 s would overflow a frame index)
# Sections whose label says "no singing" may have empty lyrics; every other section must have words.
INSTRUMENTAL_LABELS = frozenset(
    {"intro", "outro", "inst", "instrumental", "interlude", "break", "solo", "silence", "end", "pause"}
)
_LABEL_RE = re.compile(r"^\[([A-Za-z][A-Za-z0-9 _-]*)\]")
_LRC_TIME_RE = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_LRC_NEGATIVE_RE = re.compile(r"\[\s*-\s*\d+\s*:")  # [-00:05.00]: before the song starts
_LRC_TIMELIKE_RE = re.compile(r"\[\s*\d[^\]]*:[^\]]*\]")  # [1:2:3:4], [9999999:00]: not a time we read
_LRC_META_RE = re.compile(r"^\[[A-Za-z]+:[^\]]*\]$")  # [ti:Title], [ar:Artist], [length:03:20]


class SongError(ValueError):
    """A song (or its lyrics) that cannot be read or built; the message says why (yue-prep build puts it in
    the build summary, yue-eval prints it as one line)."""


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


def read_lyrics_text(path: Path) -> str:
    """A lyrics file's text (UTF-8, a BOM dropped, at most MAX_LYRICS_BYTES)."""
    try:
        return read_bytes_capped(path, "lyrics", MAX_LYRICS_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise SongError(f"lyrics: file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise SongError(f"lyrics: {path.name} is not UTF-8 text ({e.reason})") from None
    except (OSError, ValueError) as e:
        raise SongError(str(e)) from None


def load_lyrics_file(path: Path) -> list[Section]:
    suffix = path.suffix.lower()
    if suffix not in LYRICS_TYPES:
        raise SongError(
            f"lyrics: unknown file type {suffix or '(none)'!r} of {path.name} (use {', '.join(LYRICS_TYPES)})"
        )
    text = read_lyrics_text(path)
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
