"""The CPU thread count for generation: one thread on a busy machine, up to four otherwise."""

from __future__ import annotations

import pytest
import torch

from yue_train.generation.threads import default_threads, torch_threads


def test_default_threads_follow_cores_and_load():
    assert default_threads(cores=2, load=0.3) == 2
    assert default_threads(cores=16, load=1.0) == 4
    assert default_threads(cores=2, load=2.0) == 1  # every core already busy
    assert default_threads(cores=1, load=0.0) == 1


def test_torch_threads_sets_torch_and_refuses_zero():
    before = torch.get_num_threads()
    try:
        assert torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        torch_threads(0)
