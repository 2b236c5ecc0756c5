"""flash-attention 2 on packed rows: its varlen path keeps documents apart (packed = alone)."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.helpers import CUDA
from tests.tiny_models import tiny_training_llama
from yue_train.data.packing import Packer
from yue_train.training.forward import PackedForward

pytestmark = pytest.mark.gpu


def _model(attn: str) -> torch.nn.Module:
    return tiny_training_llama(attn).to(CUDA, torch.bfloat16)


def test_flash_attention_packed_document_equals_the_document_alone():
    pytest.importorskip("flash_attn", reason="flash-attn is not installed (benchmarks/gpu_suite.sh installs it)")
    from tests.gpu.helpers import packed_batch

    batch, docs = packed_batch()
    row0_docs = []
    pos = batch.position_ids[0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    model = _model("flash_attention_2")
    fwd = PackedForward(model)
    with torch.no_grad():
        packed = fwd.hidden_states(batch)
        for k, (s, e) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
            alone = Packer(iter([docs[k]]), seq_len=e - s, overflow="split").next_batch(1).to(CUDA)
            torch.testing.assert_close(packed[0, s:e], fwd.hidden_states(alone)[0], rtol=0, atol=2e-2)
            row0_docs.append(k)
        # the same packed row through sdpa (mask built from position_ids) agrees with the varlen kernel
        sdpa = PackedForward(_model("sdpa")).hidden_states(batch)
    assert len(row0_docs) >= 2
    torch.testing.assert_close(packed.float(), sdpa.float(), rtol=0, atol=5e-2)
    # the control: one unpacked causal row (documents attend to each other) differs
    with torch.no_grad():
        leaky = model.model(input_ids=batch.input_ids, use_cache=False).last_hidden_state
    assert (leaky[0, starts[1] : starts[2]].float() - packed[0, starts[1] : starts[2]].float()).abs().max() > 0.1
