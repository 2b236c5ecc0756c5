"""A vocal stem of speech with known line starts: each lyrics line synthesized alone with espeak-ng, joined
with known silences and an instrumental gap (the stem is silent there, as a separated vocal is)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16_000
VERSE = ["the night is young and so are we", "we dance until the morning light", "hold me close and never let go"]
CHORUS = ["sing it loud for everyone to hear", "the stars are falling one by one"]
LYRICS = "[verse]\n" + "\n".join(VERSE) + "\n\n[chorus]\n" + "\n".join(CHORUS) + "\n"
LEAD_S, LINE_GAPS_S, INST_GAP_S, TAIL_S = 1.5, (0.5, 0.8, 0.6), 5.0, 1.5


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _say(text: str, folder: Path, k: int) -> np.ndarray:
    path = folder / f"line{k}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    audio, sr = sf.read(path, dtype="float32")
    audio = soxr.resample(audio, sr, RATE).astype(np.float32)
    voiced = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    return audio[voiced[0] : voiced[-1] + 1]  # onset and end of the speech itself


@dataclass
class EspeakSong:
    audio: np.ndarray
    line_starts: list[float]
    section_starts: list[float]  # verse, chorus


def espeak_song(folder: Path, verse: list[str] = VERSE, chorus: list[str] = CHORUS) -> EspeakSong:
    """The sung lines (3 verse + 2 chorus lines) with their true starts."""
    pieces, starts, t = [np.zeros(int(LEAD_S * RATE), dtype=np.float32)], [], LEAD_S
    gaps = [*LINE_GAPS_S[:2], INST_GAP_S, LINE_GAPS_S[2], TAIL_S]
    for k, (text, gap) in enumerate(zip(verse + chorus, gaps, strict=True)):
        line = _say(text, folder, k)
        starts.append(t)
        pieces += [line, np.zeros(int(gap * RATE), dtype=np.float32)]
        t += (len(line) + int(gap * RATE)) / RATE
    audio = np.concatenate(pieces)
    audio += 1e-4 * np.random.default_rng(0).standard_normal(audio.size).astype(np.float32)  # a stem's noise floor
    return EspeakSong(audio, starts, [starts[0], starts[len(verse)]])
