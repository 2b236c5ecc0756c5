"""Official YuE manifest records (JSONL) -> validated :class:`~yue_train.format.song.Song` objects.

The record-level rules are the official preprocessing's (track lengths trimmed when they differ by at
most 10 frames, frames per second in [49, 51]); everything it would crash on or silently drop is
turned into a :class:`RecordError` whose message names the field and says what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format.files import check_regular_file
from yue_train.format.npy import NpyFileError, load_npy
from yue_train.format.song import CODE_FIELDS, Segment, Song

MAX_TRACK_LENGTH_DIFF = 10  # frames
FPS_RANGE = (49.0, 51.0)
# A segment may end a little past the codes (the official loader trims tracks by up to 10 frames and
# then skips such a segment); further out, the manifest does not describe these codes.
SEGMENT_END_TOLERANCE = MAX_TRACK_LENGTH_DIFF

# The default --max-doc-tokens of yue-prep: 32 rows of the longest context a recipe trains on (16,384
# tokens, the pretraining long-context phases). Documents longer than a row are cut into rows when packed, so real songs may exceed a row: a 19-minute
# song is ~520k tokens as a stage-2 document (456 tokens/s) and ~115k as a CoT document (~100 tokens/s).
# Beyond this a record is not a song but a broken or hostile one (a megabyte lyrics line, hours of codes).
DEFAULT_MAX_DOC_TOKENS = 32 * 16_384
# Text is refused before it is tokenized when it holds more than this many characters per allowed token:
# the YuE tokenizer's longest piece is 18 characters, so such text cannot fit in --max-doc-tokens.
TEXT_CHARS_PER_TOKEN = 32


class RecordError(ValueError):
    """A manifest record that cannot be used; the message says why."""


@dataclass
class RawRecord:
    """One manifest line: its 1-based line number, the parsed object or the reason it could not be parsed."""

    line_no: int
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def id(self) -> str:
        """The record's id as it can be printed and written to JSON (a lone surrogate escaped)."""
        if self.data is not None and str(self.data.get("id", "")).strip():
            return printable(str(self.data["id"]))
        return f"line {self.line_no}"


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates from JSON escapes) backslash-escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def read_manifest(path: str | Path) -> Iterator[RawRecord]:
    """Records of a JSONL manifest. Lines are decoded one by one so one bad line loses only itself."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRecord(line_no, None, f"line {line_no} is not UTF-8 ({e.reason} at byte {e.start})")
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                yield RawRecord(line_no, None, f"line {line_no} is not valid JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(data, dict):
                yield RawRecord(line_no, None, f"line {line_no} is a JSON {type(data).__name__}, not an object")
                continue
            yield RawRecord(line_no, data)


def _require(data: dict[str, Any], key: str, types: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise RecordError(f"missing field {key!r}")
    value = data[key]
    if value is None:
        raise RecordError(f"field {key!r} is null")
    if not isinstance(value, types) or isinstance(value, bool):
        raise RecordError(f"field {key!r} has type {type(value).__name__}")
    if isinstance(value, str) and printable(value) != value:
        raise RecordError(f"field {key!r} is not valid Unicode text (it holds a lone surrogate)")
    return value


def load_codes(path_value: str, root: Path, field: str, min_codebooks: int = 1, confine: bool = False) -> np.ndarray:
    """Load and check a codes ``.npy``: 2-D integer ``(n_codebooks, n_frames)`` with codes in 0..1023.
    ``confine``: the path, symlinks resolved, must lie under ``root`` (a manifest names files of its root only)."""
    path = Path(path_value)
    if not path.is_absolute():
        path = root / path
    try:
        check_regular_file(path, field)  # from stat alone: a FIFO must not block the run
    except (OSError, ValueError) as e:
        raise RecordError(str(e)) from None
    if confine and not path.resolve().is_relative_to(Path(root).resolve()):
        raise RecordError(f"{field}: {path_value} lies outside --root {root} (absolute, '..' or a symlink out of it)")
    try:
        arr = load_npy(path, field)  # the header checked against the file's size before allocating
    except NpyFileError as e:
        raise RecordError(str(e)) from None
    except OSError as e:
        raise RecordError(f"{field}: cannot read {path} ({e.strerror or type(e).__name__})") from None
    except Exception as e:  # numpy raises several types for corrupt files
        raise RecordError(f"{field}: cannot read {path} as .npy ({type(e).__name__}: {e})") from None
    if arr.ndim != 2 or arr.shape[0] < min_codebooks or arr.shape[1] == 0:
        raise RecordError(
            f"{field}: {path.name} has shape {arr.shape}, expected (n_codebooks >= {min_codebooks}, n_frames > 0)"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise RecordError(f"{field}: {path.name} has dtype {arr.dtype}, expected integer codes")
    try:
        cl.check_codes(arr, what=f"{field} {path.name}")
    except cl.CodecRangeError as e:
        raise RecordError(str(e)) from None
    return arr


def _trim_pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    if a.shape[1] == b.shape[1]:
        return a, b
    diff = abs(a.shape[1] - b.shape[1])
    if diff > MAX_TRACK_LENGTH_DIFF:
        raise RecordError(
            f"{what} lengths differ by {diff} frames ({a.shape[1]} vs {b.shape[1]}); at most "
            f"{MAX_TRACK_LENGTH_DIFF} is trimmed"
        )
    n = min(a.shape[1], b.shape[1])
    return a[:, :n], b[:, :n]


def _number(data: dict[str, Any], key: str) -> float:
    """A finite JSON number (not a bool, NaN or infinity) as a float."""
    value = _require(data, key, (int, float))
    try:
        number = float(value)
    except OverflowError:
        raise RecordError(f"field {key!r} is an integer beyond the range of a float") from None
    if not math.isfinite(number):
        raise RecordError(f"field {key!r} is {value}, not a finite number")
    return number


def _msa(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's structure sections (``msa``); the ICL prompt may be cut from a ``chorus`` between its
    ``start`` and ``end`` seconds. Both are optional, but when present they are finite, >= 0 and ordered."""
    msa = data.get("msa", [])
    if not isinstance(msa, list) or not all(isinstance(m, dict) for m in msa):
        raise RecordError("field 'msa' must be a list of {start, end, label} objects")
    for i, m in enumerate(msa):
        try:
            times = {k: _number(m, k) for k in ("start", "end") if k in m}
        except RecordError as e:
            raise RecordError(f"msa[{i}]: {e}") from None
        if times.get("start", 0.0) < 0:
            raise RecordError(f"msa[{i}]: start {times['start']} s is negative")
        if "start" in times and "end" in times and times["end"] < times["start"]:
            raise RecordError(f"msa[{i}]: start {times['start']} s is after end {times['end']} s")
        if "label" in m and not isinstance(m["label"], str):
            raise RecordError(f"msa[{i}]: field 'label' has type {type(m['label']).__name__}")
    return msa


def _segments(data: dict[str, Any], n_frames: int | None) -> list[Segment]:
    lyrics = _require(data, "splitted_lyrics", dict)
    raw = lyrics.get("segmented_lyrics")
    if not isinstance(raw, list) or not raw:
        raise RecordError("splitted_lyrics.segmented_lyrics is missing or empty")
    segments = []
    for i, s in enumerate(raw):
        where = f"segmented_lyrics[{i}]"
        if not isinstance(s, dict):
            raise RecordError(f"{where} is not an object")
        try:
            start = _require(s, "codec_frame_start", int)
            end = _require(s, "codec_frame_end", int)
            duration = _number(s, "duration")
            offset = _number(s, "offset") if s.get("offset") is not None else 0.0
            content = _require(s, "line_content", str)
        except RecordError as e:
            raise RecordError(f"{where}: {e}") from None
        if start < 0 or end < start:
            raise RecordError(f"{where}: frames {start}..{end} are {'negative' if start < 0 else 'reversed'}")
        if n_frames is not None and (start >= n_frames or end > n_frames + SEGMENT_END_TOLERANCE):
            raise RecordError(f"{where}: frames {start}..{end} lie beyond the {n_frames}-frame codes")
        if segments and start < segments[-1].frame_end:
            raise RecordError(
                f"{where}: frames {start}..{end} overlap the previous segment (which ends at frame "
                f"{segments[-1].frame_end}); segments must be in order and must not overlap"
            )
        segments.append(Segment(content, start, end, duration, offset))
    if not any(seg.line_content.strip() for seg in segments):
        raise RecordError("lyrics are empty: every segment's line_content is blank")
    return segments


def check_timing(song: Song) -> None:
    """The stated audio length must be positive and match the codes at 49..51 frames per second."""
    if not song.audio_length_in_sec > 0:
        raise RecordError(f"audio_length_in_sec is {song.audio_length_in_sec}, must be > 0")
    if not FPS_RANGE[0] <= song.fps <= FPS_RANGE[1]:
        raise RecordError(
            f"{song.n_frames} frames over {song.audio_length_in_sec} s is {song.fps:.2f} frames/s, "
            f"outside [{FPS_RANGE[0]:g}, {FPS_RANGE[1]:g}]: audio_length_in_sec does not match the codes"
        )


def load_song(
    data: dict[str, Any], root: str | Path, tracks: tuple[str, ...] = ("vocal", "inst"), lyrics: bool = True
) -> Song:
    """Validate a record and load the code arrays named by ``tracks`` (``vocal``, ``inst``, ``mixture``).

    With ``lyrics`` (stage-1 modes) the genre, lyrics and frame rate are checked too.
    """
    root = Path(root)
    record_id = str(_require(data, "id", (str, int)))
    if not record_id.strip():
        raise RecordError("field 'id' is blank")
    arrays = {t: load_codes(_require(data, CODE_FIELDS[t], str), root, CODE_FIELDS[t], confine=True) for t in tracks}
    vocals, inst, mix = arrays.get("vocal"), arrays.get("inst"), arrays.get("mixture")
    if vocals is not None and inst is not None:
        vocals, inst = _trim_pair(vocals, inst, "vocal and instrumental code")
    if mix is not None and vocals is not None and mix.shape[1] != vocals.shape[1]:
        mix, _ = _trim_pair(mix, vocals, "mixture and vocal code")
        vocals, inst = vocals[:, : mix.shape[1]], None if inst is None else inst[:, : mix.shape[1]]
    song = Song(id=record_id, vocals=vocals, instrumental=inst, mixture=mix)
    if not lyrics:
        return song
    song.genres = _require(data, "genres", str)
    song.audio_length_in_sec = _number(data, "audio_length_in_sec")
    check_timing(song)
    song.segments = _segments(data, song.n_frames)
    song.msa = _msa(data)
    return song
