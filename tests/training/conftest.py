"""Fixtures of the training tests (helpers live in :mod:`tests.training.helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.helpers import write_random_shards


@pytest.fixture(scope="session")
def random_shards(tmp_path_factory) -> Path:
    return write_random_shards(tmp_path_factory.mktemp("random_shards"), n_docs=800)
