"""Fixtures of the training tests (helpers live in :mod:`tests.training.helpers`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import built_once
from tests.training.helpers import compose, random_run_overrides, write_random_shards

TRAINED_STEPS = 4  # the shared run's checkpoints: step-2 and step-4
SUMMARY = "summary.json"  # the trained run's summary, in the folder that holds the run folder


@pytest.fixture(scope="session")
def random_shards(tmp_path_factory) -> Path:
    # One folder for every worker: a run records its shards' path, and resuming a copy of ``trained``
    # checks that path.
    return built_once(tmp_path_factory, "random_shards", lambda out: write_random_shards(out, n_docs=800))


@pytest.fixture(scope="session")
def trained(random_shards, tmp_path_factory) -> Path:
    """One finished ``tiny_random`` run over ``random_shards``: 4 steps, checkpoints at steps 2 and 4. Trained
    once per test session; tests that change it take a copy (``run``). The summary ``run_training`` returned
    is beside the run folder (:data:`SUMMARY`)."""
    from yue_train.training.trainer import run_training

    def train(folder: Path) -> None:
        overrides = random_run_overrides(random_shards, folder / "run", max_steps=TRAINED_STEPS, save_every=2)
        summary = run_training(compose(*overrides))
        assert summary["step"] == TRAINED_STEPS
        (folder / SUMMARY).write_text(json.dumps(summary, default=str))

    return built_once(tmp_path_factory, "trained", train) / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of ``trained`` of the test's own."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, symlinks=True)
    return copy
