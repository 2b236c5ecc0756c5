"""In-memory song: what the sequence builders need from a manifest record, already validated."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The manifest field that names each track's codes file.
CODE_FIELDS = {"vocal": "vocals_codec", "inst": "instrumental_codec", "mixture": "codec"}


@dataclass(frozen=True)
class Segment:
    """One lyrics segment of the official manifest (``splitted_lyrics.segmented_lyrics[i]``)."""

    line_content: str
    frame_start: int
    frame_end: int
    duration: float
    offset: float = 0.0

    @property
    def n_frames(self) -> int:
        return self.frame_end - self.frame_start


@dataclass
class Song:
    """A record with its codes loaded. Code arrays are ``(n_codebooks, n_frames)``; vocals and
    instrumental have equal length (the loader trims them as the official preprocessing does)."""

    id: str
    genres: str = ""
    segments: list[Segment] = field(default_factory=list)
    audio_length_in_sec: float = 0.0
    msa: list[dict] = field(default_factory=list)
    vocals: np.ndarray | None = None
    instrumental: np.ndarray | None = None
    mixture: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        ref = self.vocals if self.vocals is not None else self.mixture
        return 0 if ref is None else int(ref.shape[1])

    @property
    def fps(self) -> float:
        """Frames per second as the official code computes it: frames / stated audio length."""
        return self.n_frames / self.audio_length_in_sec
