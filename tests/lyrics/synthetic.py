"""Emission matrices whose every character's frames are known: a stand-in CTC model for alignment tests."""

from __future__ import annotations

import string

import numpy as np

from yue_train.lyrics.align import Emissions
from yue_train.lyrics.viterbi import DEFAULT_PENALTIES

BLANK, SPACE = 0, 1
VOCAB = {c: i + 2 for i, c in enumerate(string.ascii_lowercase)}
FRAME_S = 0.02


def tokenize(text: str) -> list[int]:
    ids = [SPACE if c == " " else VOCAB[c] for c in " ".join(text.lower().split()) if c == " " or c in VOCAB]
    return ids


class SyntheticVocal:
    """Frames are appended piece by piece; ``truth`` records (first, last + 1) frames of each sung line."""

    def __init__(self, seed: int = 0, peak: float = 6.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.peak = peak
        self.frames: list[int] = []  # the token each frame is heard as
        self.truth: list[tuple[int, int]] = []

    def silence(self, n: int) -> SyntheticVocal:
        self.frames += [BLANK] * n
        return self

    def sing(self, text: str, long_note_every: int = 7) -> SyntheticVocal:
        start = len(self.frames)
        for k, tok in enumerate(tokenize(text)):
            hold = 12 if k % long_note_every == long_note_every - 1 else int(self.rng.integers(1, 4))
            self.frames += [tok] * hold  # a held token: a long note
            self.frames += [BLANK] * int(self.rng.integers(0, 3))
        while self.frames[-1] == BLANK:
            self.frames.pop()
        self.truth.append((start, len(self.frames)))
        return self

    def emissions(self) -> Emissions:
        n_vocab = len(VOCAB) + 2
        logits = self.rng.normal(0.0, 0.5, (len(self.frames), n_vocab))
        logits[np.arange(len(self.frames)), self.frames] += self.peak
        log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        return Emissions(log_probs.astype(np.float32), FRAME_S, BLANK, tokenize)

    def silent(self) -> np.ndarray:
        """What a VAD would say: frames far (> 3) from any sung token are silent."""
        sung = np.array(self.frames) != BLANK
        near = np.convolve(sung.astype(float), np.ones(7), mode="same") > 0
        return ~near


class SyntheticAligner:
    """An aligner backend whose emissions are a :class:`SyntheticVocal`'s; its audio is noise where tokens are sung."""

    name = "synthetic"
    sample_rate = 16_000
    penalties = DEFAULT_PENALTIES

    def __init__(self, vocal: SyntheticVocal) -> None:
        self.vocal = vocal

    def audio(self) -> np.ndarray:
        hop = int(FRAME_S * self.sample_rate)
        level = np.where(~self.vocal.silent(), 0.3, 0.0).repeat(hop)
        return (self.vocal.rng.standard_normal(level.size) * level).astype(np.float32)

    def emissions(self, audio: np.ndarray) -> Emissions:
        return self.vocal.emissions()
