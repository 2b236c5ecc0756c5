"""Stage 1 on CUDA: the static cache + torch.compile'd step decodes what the eager dynamic-cache loop does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_llama
from yue_train.format import vocab
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.stage1 import generate_section

pytestmark = pytest.mark.gpu


def test_compiled_static_cache_step_matches_eager_greedy():
    model = tiny_llama(dtype=torch.float32).to("cuda")
    context = torch.as_tensor(np.r_[np.arange(200, 260), vocab.SOA, vocab.XCODEC])
    eager = SamplingConfig(greedy=True, max_new_tokens=48, min_new_tokens=48)
    compiled = SamplingConfig(greedy=True, max_new_tokens=48, min_new_tokens=48, compile=True)
    a = generate_section(model, context, eager, 1.5)
    b = generate_section(model, context, compiled, 1.5)
    assert a.tolist() == b.tolist()
