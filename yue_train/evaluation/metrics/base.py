"""The one interface every metric implements: audio in, numbers out.

``SongMetric.score`` sees one song at a time; ``SetMetric.score_set`` sees the whole generated set and,
when given, the reference set (FAD needs both). Both return plain floats keyed by a short name; the
evaluation run prefixes them with the metric's registered name. ``artifacts`` carry what a report draws
(a pitch contour, say), never what it scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SongAudio:
    """One song to score: mono float32 waves at ``sample_rate`` and what is known about how it was made.

    ``vocal`` and ``inst`` are the separate tracks YuE generates (None for a plain mix, e.g. a reference
    song without stems). ``info`` holds the generation report's entry for the song when there is one
    (sections requested and generated, EOA reached, frames)."""

    id: str
    sample_rate: int
    mix: np.ndarray
    vocal: np.ndarray | None = None
    inst: np.ndarray | None = None
    genres: str = ""
    lyrics: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.mix) / self.sample_rate


@dataclass
class MetricResult:
    values: dict[str, float]
    artifacts: dict[str, Any] = field(default_factory=dict)


class MetricError(ValueError):
    """A metric that cannot run as configured (missing weights, missing target voice); one line saying what to do."""


class SongMetric(ABC):
    """Scores songs one at a time."""

    name: str = ""

    @abstractmethod
    def score(self, song: SongAudio) -> MetricResult: ...


class SetMetric(ABC):
    """Scores the generated set as a whole, optionally against a reference set."""

    name: str = ""
    needs_reference: bool = False

    @abstractmethod
    def score_set(self, songs: Sequence[SongAudio], reference: Sequence[SongAudio] | None) -> dict[str, float]: ...
