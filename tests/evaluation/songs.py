"""Songs for the evaluation tests, built in memory and on disk: stage-1 ids with known structure, audio
files, and a test-only metric that returns a known pitch contour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from yue_train.evaluation.metrics import MODULES, register
from yue_train.evaluation.metrics.base import MetricResult, SongAudio, SongMetric
from yue_train.evaluation.songs import LoadedSong
from yue_train.format import codec_layout as cl
from yue_train.format import vocab

RATE = 16_000
CONTOUR_METRIC = "test_contour"


def section_ids(n_frames: int, *, bad: bool = False) -> list[int]:
    """One generated stage-1 section: ``<SOA> <xcodec>``, interleaved vocal/inst codebook-0 ids, ``<EOA>``;
    ``bad``: one id outside codebook 0 (a text id) in the middle."""
    body = list(cl.CODEC_OFFSET + (np.arange(2 * n_frames) % cl.CODEBOOK_SIZE))
    if bad:
        body[n_frames] = 1000
    return [vocab.SOA, vocab.XCODEC, *body, vocab.EOA]


def tone(seconds: float, hz: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def audio_song(folder: Path, name: str, hz: float, seconds: float = 1.0) -> LoadedSong:
    """A song with mix, vocal and accompaniment files under ``folder``."""
    vocal, inst = tone(seconds, hz), tone(seconds, hz / 2, 0.2)
    media = {}
    for part, wave in (("mix", vocal + inst), ("vocal", vocal), ("inst", inst)):
        media[part] = folder / f"{name}.{part}.wav"
        sf.write(media[part], wave, RATE)
    song = SongAudio(name, RATE, vocal + inst, vocal, inst, genres="pop", lyrics="[verse]\nla la\n")
    return LoadedSong(song, media)


@register(CONTOUR_METRIC)
class KnownContour(SongMetric):
    """A pitch contour artifact of a straight line from 200 to 400 Hz, and its range, as vocal_range
    returns one; values: the range's ends."""

    def score(self, song: SongAudio) -> MetricResult:
        times = np.linspace(0, song.seconds, 50)
        f0 = np.linspace(200, 400, 50)
        f0[10:15] = 0  # unvoiced frames
        return MetricResult(
            {"low_hz": 200.0, "high_hz": 400.0}, {"times": times.tolist(), "f0": f0.tolist(), "range": [200.0, 400.0]}
        )


def install_contour_metric(monkeypatch) -> None:
    monkeypatch.setitem(MODULES, CONTOUR_METRIC, __name__)
