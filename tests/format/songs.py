"""Small hand-made songs for format tests."""

from __future__ import annotations

import numpy as np

from yue_train.format.song import Segment, Song


def varied_codes(rng: np.random.Generator, n_codebooks: int, n_frames: int) -> np.ndarray:
    return rng.integers(0, 1024, size=(n_codebooks, n_frames))


def make_song(
    seconds_per_segment=(10, 10, 10),
    labels=("verse", "chorus", "outro"),
    msa=None,
    seed: int = 0,
    with_mixture: bool = True,
    song_id: str = "song",
) -> Song:
    rng = np.random.default_rng(seed)
    frames = [int(s * 50) for s in seconds_per_segment]
    total = sum(frames)
    segments, start = [], 0
    for label, n in zip(labels, frames, strict=True):
        segments.append(Segment(f"[{label}]\nla la love\n\n", start, start + n, n / 50, start / 50))
        start += n
    if msa is None:
        msa, start = [], 0
        for label, n in zip(labels, frames, strict=True):
            msa.append({"start": start / 50, "end": (start + n) / 50, "label": label})
            start += n
    return Song(
        id=song_id,
        genres="pop female bright",
        segments=segments,
        audio_length_in_sec=total / 50,
        msa=msa,
        vocals=varied_codes(rng, 1, total),
        instrumental=varied_codes(rng, 1, total),
        mixture=varied_codes(rng, 1, total) if with_mixture else None,
    )
