"""Metrics registered by name: ``@register("vocal_range")`` on a class, ``build_metric(name, **options)``.

A metric's module is imported when the metric is built, so choosing a cheap metric never loads the
packages of an expensive one."""

from __future__ import annotations

import importlib
from typing import Any

from yue_train.evaluation.metrics.base import MetricError, MetricResult, SetMetric, SongAudio, SongMetric

__all__ = ["MetricError", "MetricResult", "SetMetric", "SongAudio", "SongMetric", "available", "build_metric"]

# name -> module that defines it; a module registers its classes when imported
MODULES: dict[str, str] = {
    "structure": "yue_train.evaluation.metrics.structure",
    "vocal_range": "yue_train.evaluation.metrics.pitch",
    "vocal_activity": "yue_train.evaluation.metrics.pitch",
    "voice_similarity": "yue_train.evaluation.metrics.voice",
    "clap": "yue_train.evaluation.metrics.clap",
    "fad": "yue_train.evaluation.metrics.clap",
    "lyrics_wer": "yue_train.evaluation.metrics.lyrics",
    "lyrics_per": "yue_train.evaluation.metrics.lyrics",
}
_REGISTRY: dict[str, type[SongMetric] | type[SetMetric]] = {}


def register(name: str):
    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    return sorted(MODULES)


def build_metric(name: str, **options: Any) -> SongMetric | SetMetric:
    if name not in MODULES:
        raise MetricError(f"unknown metric {name!r}; choose from {', '.join(available()) or '(none registered)'}")
    importlib.import_module(MODULES[name])
    return _REGISTRY[name](**options)
