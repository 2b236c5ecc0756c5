"""Typed schema of the composed config (filled in by the typed-config step)."""

from __future__ import annotations

from omegaconf import DictConfig


class SchemaError(ValueError):
    pass


def check_schema(cfg: DictConfig) -> DictConfig:
    return cfg
