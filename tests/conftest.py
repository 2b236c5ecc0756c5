"""Shared fixtures. ``tests/fixtures`` holds the real YuE reference files the tests read (tokenizer, tags,
the official examples, the golden CoT streams, the codec configs; its README says where each comes from), so
any clone runs every test."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from yue_train.config.compose import RECIPES_ENV

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TEST_RECIPES = REPO / "tests" / "recipes"

# The tiny recipes the tests train (tiny, tiny_lora, pretrain/tiny_p1, ...) are a test-only recipe folder,
# added the way a user adds theirs; subprocesses inherit it.
os.environ[RECIPES_ENV] = os.pathsep.join(
    [str(TEST_RECIPES), *(d for d in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if d and d != str(TEST_RECIPES))]
)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``name``, written by ``build(folder)`` once per test session and then only read.

    Under pytest-xdist the workers share it: each worker's temporary folder lies in the session's, so the
    first worker to ask builds it there under a file lock and the others wait for it, instead of each
    building its own (a session fixture runs once per worker). A build that raises is tried again by the
    next test that asks."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def fixture_file(*parts: str) -> Path:
    """A file under ``tests/fixtures``; a missing one fails the test (the files are part of the repository)."""
    path = FIXTURES.joinpath(*parts)
    assert path.exists(), f"{path} is missing from the checkout (tests/fixtures is tracked by git)"
    return path


@pytest.fixture(scope="session")
def real_tokenizer_path() -> Path:
    return fixture_file("yue", "tokenizer.model")


@pytest.fixture(scope="session")
def real_tokenizer(real_tokenizer_path):
    from yue_train.tokenizer import load_tokenizer

    return load_tokenizer(real_tokenizer_path)


@pytest.fixture(scope="session")
def synth_tokenizer():
    from yue_train.tokenizer import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture(scope="session")
def reference_example() -> Path:
    """``tests/fixtures/yue``: the root that the example manifest's relative paths start from."""
    return fixture_file("yue", "example", "jsonl", "dummy.msa.xcodec_16k.jsonl").parents[2]


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    from yue_train.data.synthetic import write_synthetic_manifest

    return write_synthetic_manifest(tmp_path_factory.mktemp("corpus"), n_songs=4, seed=1)


GPU_SKIP_REASON = "needs a CUDA device (torch.cuda.is_available() is False); benchmarks/gpu_suite.sh runs the gpu tests"


# The longest tests of `make test` (each over 40 s on the 2-core CPU VM), longest first: they are handed to the
# pytest-xdist workers before every other test, so that no long test starts last and keeps one worker running
# while the other has finished (test_schedule_names_existing_tests keeps these names true). Their modules have
# no module-scoped fixtures, so moving them splits no fixture's users; the other tests keep the collection order.
LONGEST_FIRST = (
    "tests/test_readme.py::test_every_documentation_bash_block_runs",
    "tests/test_gpu_suite_smoke.py::test_gpu_suite_cpu_smoke_writes_one_json",
    "tests/test_train_state_benchmark.py::test_smoke_run_reports_the_four_measurements",
)


def schedule_rank(item: pytest.Item) -> int:
    """The sort key of the run order: the ``LONGEST_FIRST`` tests in its order, then every other test (a stable
    sort keeps their collection order)."""
    nodeid = item.nodeid.split("@")[0]
    return next((i for i, name in enumerate(LONGEST_FIRST) if nodeid == name), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config, items):
    """Runs the longest tests first (``schedule_rank``); tests marked ``gpu`` are skipped, with the reason, where
    no CUDA device is present."""
    items.sort(key=schedule_rank)
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))
