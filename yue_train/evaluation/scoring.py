"""Run the chosen metrics over a set of songs: per-song values, set values (against a reference set when
given), their aggregate, and ``eval.json``.

Values are keyed ``METRIC/NAME`` (``structure/sections_generated``, ``vocal_range/semitones``); the
aggregate of a per-song value is its mean over the songs that have it. A metric that needs audio skips
songs without audio (a training run without a codec), and a set metric that needs a reference set is
skipped without one; both are listed under ``skipped``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from yue_train.evaluation.metrics import MODULES, MetricError, SetMetric, SongMetric, build_metric
from yue_train.evaluation.songs import LoadedSong

EVAL_JSON = "eval.json"
# Chosen when no metrics are named: the ones that need no downloaded weights (present in this install).
DEFAULT_METRICS = ("structure", "vocal_range", "vocal_activity")
# Packages whose versions eval.json records when installed (the metrics' own packages among them).
VERSIONED = (
    "yue-train", "torch", "transformers", "numpy", "soundfile", "soxr", "wandb", "matplotlib", "resemblyzer",
    "librosa", "webrtcvad",
)  # fmt: skip


def default_metrics() -> list[str]:
    return [m for m in DEFAULT_METRICS if m in MODULES]


def parse_metrics(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"a,b"`` (or a list) -> metric names, checked against the registry; None -> :func:`default_metrics`."""
    if text is None:
        return default_metrics()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise MetricError("no metric named; give names such as structure,vocal_range")
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise MetricError(f"unknown metric {unknown[0]!r}; choose from {', '.join(sorted(MODULES))}")
    return list(dict.fromkeys(names))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass
class SongScores:
    id: str
    values: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric name -> what the report draws


@dataclass
class Evaluation:
    songs: list[LoadedSong]
    scores: list[SongScores]  # in the order of ``songs``
    aggregate: dict[str, float]
    metrics: list[str]
    skipped: dict[str, str]  # metric -> why it did not run (for some or all songs)
    seconds: float  # wall-clock time of scoring
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, folder: Path | None = None) -> dict[str, Any]:
        """What ``eval.json`` holds; media paths relative to ``folder`` where they lie under it."""

        def rel(p: Path) -> str:
            if folder is not None:
                try:
                    return str(Path(p).resolve().relative_to(Path(folder).resolve()))
                except ValueError:
                    pass
            return str(p)

        return {
            "config": self.config,
            "versions": versions(),
            "metrics": self.metrics,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "aggregate": self.aggregate,
            "songs": [
                {
                    "id": s.audio.id,
                    "genres": s.audio.genres,
                    "lyrics": s.audio.lyrics,
                    "seconds": s.audio.seconds if s.has_audio else None,
                    "vocal_source": s.vocal_source,
                    "media": {k: rel(p) for k, p in s.media.items()},
                    "values": sc.values,
                }
                for s, sc in zip(self.songs, self.scores, strict=True)
            ],
        }


def _finite(v: float) -> float | None:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def check_options(names: list[str], options: dict[str, dict[str, Any]], given_as: str = "options given") -> None:
    """Options only for metrics among ``names`` (``given_as`` names where the options came from)."""
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise MetricError(f"{given_as} for {unknown[0]!r}, which is not among the chosen metrics ({','.join(names)})")


def build_metrics(names: list[str], options: dict[str, dict[str, Any]] | None = None) -> list[SongMetric | SetMetric]:
    """The metrics, built before any song is scored (a metric missing its weights fails first)."""
    options = options or {}
    check_options(names, options)
    return [build_metric(n, **(options.get(n) or {})) for n in names]


def score_songs(
    songs: list[LoadedSong],
    metrics: list[str],
    options: dict[str, dict[str, Any]] | None = None,
    reference: list[LoadedSong] | None = None,
    progress: bool = True,
    config: dict[str, Any] | None = None,
) -> Evaluation:
    """Score ``songs`` with the named metrics (progress bar over songs); see the module doc."""
    started = time.perf_counter()
    built = build_metrics(metrics, options)
    skipped: dict[str, str] = {}
    scores = [SongScores(s.audio.id) for s in songs]
    song_metrics = [m for m in built if isinstance(m, SongMetric)]
    for song, sc in tqdm(list(zip(songs, scores, strict=True)), desc="scoring", unit="song", disable=not progress):
        for m in song_metrics:
            if getattr(m, "needs_audio", True) and not song.has_audio:
                skipped[m.name] = "songs without audio (generate with a codec)"
                continue
            result = m.score(song.audio)
            sc.values.update({f"{m.name}/{k}": float(v) for k, v in result.values.items()})
            if result.artifacts:
                sc.artifacts[m.name] = result.artifacts
    aggregate: dict[str, float] = {"songs": float(len(songs))}
    keys = list(dict.fromkeys(k for sc in scores for k in sc.values))
    for key in keys:
        present = [v for sc in scores if (v := _finite(sc.values.get(key, math.nan))) is not None]
        if present:
            aggregate[key] = sum(present) / len(present)
    with_audio = [s.audio for s in songs if s.has_audio]
    for m in built:
        if not isinstance(m, SetMetric):
            continue
        if m.needs_reference and not reference:
            skipped[m.name] = "no reference set (give one with --reference)"
            continue
        if not with_audio:
            skipped[m.name] = "songs without audio (generate with a codec)"
            continue
        ref = [r.audio for r in reference if r.has_audio] if reference else None
        aggregate.update({f"{m.name}/{k}": float(v) for k, v in m.score_set(with_audio, ref).items()})
    return Evaluation(songs, scores, aggregate, list(metrics), skipped, time.perf_counter() - started, config or {})


def write_eval_json(evaluation: Evaluation, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / EVAL_JSON
    clean = json.loads(json.dumps(evaluation.as_dict(folder), default=str), parse_constant=lambda _: None)
    path.write_text(json.dumps(clean, indent=2) + "\n")
    return path
