"""Shared fixtures. ``../shared`` (beside the checkout) holds the real YuE reference files; tests that need
them skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yue_train.config.compose import RECIPES_ENV

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
TEST_RECIPES = REPO / "tests" / "recipes"

# The tiny recipes the tests train (tiny, tiny_lora, pretrain/tiny_p1, ...) are a test-only recipe folder,
# added the way a user adds theirs; subprocesses inherit it.
os.environ[RECIPES_ENV] = os.pathsep.join(
    [str(TEST_RECIPES), *(d for d in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if d and d != str(TEST_RECIPES))]
)


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (the read-only YuE reference files) is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def real_tokenizer_path() -> Path:
    return require_shared("reference", "yue", "tokenizer.model")


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
    """``reference/yue``: the root that the example manifest's relative paths start from."""
    require_shared("reference", "yue", "example", "jsonl", "dummy.msa.xcodec_16k.jsonl")
    return REFERENCE / "yue"


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    from yue_train.data.synthetic import write_synthetic_manifest

    return write_synthetic_manifest(tmp_path_factory.mktemp("corpus"), n_songs=4, seed=1)


GPU_SKIP_REASON = "needs a CUDA device (torch.cuda.is_available() is False); benchmarks/gpu_suite.sh runs the gpu tests"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason, where no CUDA device is present."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))
