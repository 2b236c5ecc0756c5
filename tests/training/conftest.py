"""Fixtures of the training tests (helpers live in :mod:`tests.training.helpers`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.training.helpers import compose, random_run_overrides, write_random_shards

TRAINED_STEPS = 4  # the shared run's checkpoints: step-2 and step-4


@pytest.fixture(scope="session")
def random_shards(tmp_path_factory) -> Path:
    return write_random_shards(tmp_path_factory.mktemp("random_shards"), n_docs=800)


@pytest.fixture(scope="session")
def trained(random_shards, tmp_path_factory) -> Path:
    """One finished ``tiny_random`` run over ``random_shards``: 4 steps, checkpoints at steps 2 and 4. Trained
    once per test process; tests that change it take a copy (``run``)."""
    from yue_train.training.trainer import run_training

    run = tmp_path_factory.mktemp("trained") / "run"
    overrides = random_run_overrides(random_shards, run, max_steps=TRAINED_STEPS, save_every=2)
    assert run_training(compose(*overrides))["step"] == TRAINED_STEPS
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of ``trained`` of the test's own."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, symlinks=True)
    return copy
