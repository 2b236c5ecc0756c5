"""The data-preparation step: write the generated datasets a config trains on, before its data is checked.

Two kinds of dataset are generated rather than read: the demo corpus (``data.demo_corpus``, see
:mod:`.demo_corpus`), written only when a ``data.train`` or ``data.eval`` entry reads its folder, and
entries with a ``synthetic:`` block (:mod:`.pretrain_corpus`). :func:`~.pretrain_corpus.synthetic_entries`
only checks and runs with the other config checks on every process; :func:`prepare_data` writes, on one
process, after those checks have passed, so a config that cannot train leaves no corpus behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yue_train.data.demo_corpus import write_demo_corpus
from yue_train.data.pretrain_corpus import prepare_synthetic_datasets


def _entry_paths(cfg: Any) -> list[str]:
    paths: list[str] = []
    for group in ("train", "eval"):
        for entry in cfg.data[group] or []:
            path = entry.path
            if isinstance(path, str):
                paths.append(path)
            elif path is not None:
                paths += [str(p) for p in path]
    return paths


def demo_corpus_in_use(cfg: Any) -> bool:
    """Whether ``data.demo_corpus`` is enabled and a ``data.train``/``data.eval`` entry reads its folder."""
    dc = cfg.data.demo_corpus
    if dc is None or not dc.enabled:
        return False
    out = os.path.abspath(str(dc.out))
    return any(os.path.abspath(p) == out for p in _entry_paths(cfg))


def prepare_data(cfg: Any) -> list[Path]:
    """Write the generated datasets ``cfg`` reads, unless finished ones are there already; returns their folders."""
    written: list[Path] = []
    if demo_corpus_in_use(cfg):
        dc = cfg.data.demo_corpus
        written.append(
            write_demo_corpus(dc.out, n_songs=dc.n_songs, seconds=tuple(dc.seconds), stage=dc.stage, seed=dc.seed)
        )
    written += prepare_synthetic_datasets(cfg)
    return written
