"""A transcript of a vocal (timed segments from an ASR model) -> timed lines and guessed sections, written as LRC.

For songs with no lyrics at all. The ASR model (Whisper, :mod:`yue_train.evaluation.metrics.lyrics`) is
passed in as a function, so this module holds the logic alone:

- lines: the transcript's segments, clamped to the audio, in time order. Dropped: segments without words
  (Whisper writes ``[Music]``, ``(upbeat music)`` or ``♪`` for what it hears as no speech; as LRC lines,
  ``[Music]`` would read as a section marker) and segments where the VAD (:mod:`yue_train.lyrics.vad`)
  hears no voice at all (text Whisper invents over silence). A line that starts where the VAD hears silence
  starts at the next voiced frame instead (a segment may start in the pause before the singing); lines
  starting together are one.
- blocks: a new block starts at a line when the vocal pauses for at least ``min_gap_s`` before it (the
  previous line ends that much earlier, or a silent run that long lies between the two lines' starts).
- labels, by repetition: a line *repeats* when another line of the song has the same normalised words
  (``difflib`` ratio >= ``similar``). A block is cut where its lines go from repeating to not (runs of one
  line join their neighbour), and each run is ``[chorus]`` when its lines repeat, else ``[verse]``.
- sections: :func:`yue_train.lyrics.align.sections_from_lines` on those blocks, so pauses at the start, in
  between and at the end become ``[intro]`` / ``[inst]`` / ``[outro]`` as for aligned lyrics.

The labels are guesses (the transcript knows no song structure); the written LRC says so in its first line,
an LRC metadata line that readers skip. An existing file is the user's (checked, maybe corrected by hand):
it is used as it is unless ``force``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yue_train.lyrics.align import AlignedLine, Alignment, sections_from_lines
from yue_train.lyrics.backends.text import words
from yue_train.lyrics.lrc import to_lrc
from yue_train.lyrics.plain import Block
from yue_train.lyrics.vad import voiced_frames

GUESSED_NOTE = (
    "section labels guessed from pauses and repeated lines of a Whisper transcript, not from lyrics: "
    "check them and the words"
)
LRC_NOTE_LINE = f"[note:{GUESSED_NOTE}]"  # an LRC metadata line: yue-prep build's reader skips it
MIN_GAP_S = 2.0  # a pause this long in the vocal starts a new block
SIMILAR = 0.8  # lines whose normalised words match at least this well (difflib ratio) are the same line
VAD_FRAME_S = 0.02

Segments = Callable[[np.ndarray, int], list[tuple[float, float, str]]]  # (audio, sample rate) -> timed text


@dataclass(frozen=True)
class Line:
    start: float
    end: float
    text: str


class TranscriptionError(ValueError):
    """The vocal's transcript gives no lyrics; the message says why."""


@dataclass
class Transcription:
    lines: list[Line]
    blocks: list[Block]  # the guessed blocks, in order: their lines are ``lines`` in order
    alignment: Alignment  # the lines placed in their blocks, and the timed sections

    def lrc(self) -> str:
        """The LRC ``yue-prep build`` reads, its first line saying that the labels are guesses."""
        return f"{LRC_NOTE_LINE}\n" + to_lrc(self.alignment)


def clean_lines(segments: Sequence[tuple[float, float, str]], duration_s: float) -> list[Line]:
    """Segments as lines: text stripped and with words outside brackets, starting inside the audio, times
    clamped to it, sorted by start, each ending no earlier than it starts."""
    lines = []
    for start, end, text in segments:
        text = " ".join(str(text).split())
        start = max(0.0, float(start))
        if not words(text) or not np.isfinite(start) or start >= duration_s:
            continue
        end = min(float(end), duration_s) if np.isfinite(end) else duration_s
        lines.append(Line(start, max(start, end), text))
    return sorted(lines, key=lambda ln: ln.start)


def join_same_start(lines: list[Line]) -> list[Line]:
    """Lines that start in the same centisecond (LRC's resolution) as one line: apart they would make an empty
    section if a section boundary fell between them."""
    out: list[Line] = []
    for ln in lines:
        if out and round(ln.start * 100) == round(out[-1].start * 100):
            out[-1] = Line(out[-1].start, max(out[-1].end, ln.end), f"{out[-1].text} {ln.text}")
        else:
            out.append(ln)
    return out


def silent_runs(voiced: np.ndarray, frame_s: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of unvoiced frames."""
    runs, begin = [], None
    for k, v in enumerate([*np.asarray(voiced, dtype=bool), True]):
        if not v and begin is None:
            begin = k
        elif v and begin is not None:
            runs.append((begin * frame_s, k * frame_s))
            begin = None
    return runs


def voiced_lines(lines: list[Line], silences: list[tuple[float, float]]) -> list[Line]:
    """The lines whose span is not inside one silent run: somebody sings in them."""
    return [ln for ln in lines if not any(a <= ln.start and ln.end <= b for a, b in silences)]


def start_on_voice(lines: list[Line], silences: list[tuple[float, float]]) -> list[Line]:
    """Each line that starts inside a silent run starts where the run ends, when that is before the line's end."""
    out = []
    for ln in lines:
        start = ln.start
        for a, b in silences:
            if a <= start < b and b < ln.end:
                start = b
        out.append(Line(start, ln.end, ln.text))
    return out


def block_starts(lines: list[Line], silences: list[tuple[float, float]], min_gap_s: float = MIN_GAP_S) -> list[int]:
    """Indices of the lines that start a block: the first, and each one after a pause of ``min_gap_s``."""
    long_silences = [(a, b) for a, b in silences if b - a >= min_gap_s]
    starts = [0] if lines else []
    for i in range(1, len(lines)):
        prev, cur = lines[i - 1], lines[i]
        paused = cur.start - prev.end >= min_gap_s
        paused = paused or any(prev.start < (a + b) / 2 <= cur.start for a, b in long_silences)
        if paused:
            starts.append(i)
    return starts


def repeats(texts: list[str], similar: float = SIMILAR) -> list[bool]:
    """For each line: does another line of the song have the same words (``difflib`` ratio >= ``similar``)?"""
    norm = [" ".join(words(t)) for t in texts]
    out = [False] * len(texts)
    for i in range(len(norm)):
        for j in range(i + 1, len(norm)):
            if norm[i] and norm[j] and difflib.SequenceMatcher(None, norm[i], norm[j]).ratio() >= similar:
                out[i] = out[j] = True
    return out


def _equal_runs(flags: list[bool]) -> list[tuple[int, int, bool]]:
    runs: list[tuple[int, int, bool]] = []
    for i, f in enumerate(flags):
        if runs and runs[-1][2] == f:
            runs[-1] = (runs[-1][0], i + 1, f)
        else:
            runs.append((i, i + 1, f))
    return runs


def _runs(flags: list[bool]) -> list[tuple[int, int, bool]]:
    """(first, last + 1, flag) runs of equal flags, where a run of one line takes the flag of the line before it
    (the first line: of the line after it), so that one line is never a section of its own."""
    flags = list(flags)
    for first, last, _ in _equal_runs(flags):
        if last - first == 1 and len(flags) > 1:
            flags[first] = flags[first - 1] if first else flags[1]
    return _equal_runs(flags)


def guess_blocks(
    lines: list[Line], silences: list[tuple[float, float]], min_gap_s: float = MIN_GAP_S, similar: float = SIMILAR
) -> list[Block]:
    """The lines grouped into ``[verse]`` / ``[chorus]`` blocks (see the module docstring)."""
    flags = repeats([ln.text for ln in lines], similar)
    starts = [*block_starts(lines, silences, min_gap_s), len(lines)]
    blocks = []
    for a, b in zip(starts, starts[1:], strict=False):
        for first, last, repeated in _runs(flags[a:b]):
            texts = [ln.text for ln in lines[a + first : a + last]]
            blocks.append(Block("chorus" if repeated else "verse", texts))
    return blocks


def transcribe_audio(
    segments: Segments, audio: np.ndarray, sample_rate: int, min_gap_s: float = MIN_GAP_S, similar: float = SIMILAR
) -> Transcription:
    """Timed lines and guessed sections of a vocal (mono); TranscriptionError when the transcript has no words."""
    duration = len(audio) / sample_rate
    voiced = voiced_frames(audio, sample_rate, VAD_FRAME_S, max(1, int(np.ceil(duration / VAD_FRAME_S))))
    silences = silent_runs(voiced, VAD_FRAME_S)
    lines = clean_lines(segments(audio, sample_rate), duration)
    lines = join_same_start(start_on_voice(voiced_lines(lines, silences), silences))
    if not lines:
        raise TranscriptionError("the transcript of the vocal has no words where it is voiced (is anybody singing?)")
    blocks = guess_blocks(lines, silences, min_gap_s, similar)
    owners = [b for b, block in enumerate(blocks) for _ in block.lines]
    aligned = [
        AlignedLine(i, b, ln.text, ln.start, ln.end, 1.0, "ok")
        for i, (ln, b) in enumerate(zip(lines, owners, strict=True))
    ]
    sections = sections_from_lines(blocks, aligned, duration, min_gap_s)
    return Transcription(lines, blocks, Alignment(aligned, [], sections))


@dataclass
class FolderTranscription:
    lrc: Path
    transcription: Transcription | None  # None: an existing file was used as it is

    def report(self) -> dict[str, object]:
        """What the build summary and ``yue-prep align`` record of the song's transcription."""
        info: dict[str, object] = {"lrc": str(self.lrc), "reused": self.transcription is None}
        info["section_labels"] = GUESSED_NOTE if self.transcription is not None else "as in the file"
        if self.transcription is not None:
            info["lines"] = len(self.transcription.lines)
            info["sections"] = [s.label for s in self.transcription.alignment.sections]
        return info


def transcribe_folder(
    target: Path, vocal: Callable[[], tuple[np.ndarray, int]], segments: Segments, force: bool = False
) -> FolderTranscription:
    """Write the transcription of ``vocal()`` (audio, sample rate) to ``target`` unless it is there already."""
    if target.is_file() and not force:
        return FolderTranscription(target, None)
    audio, rate = vocal()
    result = transcribe_audio(segments, audio, rate)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(result.lrc(), encoding="utf-8")
    os.replace(tmp, target)
    return FolderTranscription(target, result)
