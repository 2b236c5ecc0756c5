"""torch's varlen_attn (``attn_implementation=torch_varlen``) on packed bf16 rows: each document equals the
document alone in hidden states and gradients, and agrees with SDPA's per-document mask."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.helpers import CUDA, cosine, packed_batch
from tests.tiny_models import tiny_training_llama
from yue_train.data.packing import Packer
from yue_train.models.attention import TORCH_VARLEN, torch_varlen_available
from yue_train.training.forward import PackedForward

pytestmark = pytest.mark.gpu


def _model(attn: str) -> torch.nn.Module:
    return tiny_training_llama(attn).to(CUDA, torch.bfloat16)


def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])


def test_torch_varlen_packed_document_equals_the_document_alone():
    if not torch_varlen_available():
        pytest.skip(f"torch {torch.__version__} has no torch.nn.attention.varlen (2.10 and later)")
    batch, docs = packed_batch()
    pos = batch.position_ids[0].tolist()
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    model = _model(TORCH_VARLEN)
    fwd = PackedForward(model)
    packed = fwd.hidden_states(batch)
    packed[0].float().square().sum().backward()  # row 0 only: its documents' gradients
    packed_grads = _grads(model)
    model.zero_grad(set_to_none=True)
    for k, (s, e) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
        alone = Packer(iter([docs[k]]), seq_len=e - s, overflow="split").next_batch(1).to(CUDA)
        hidden = fwd.hidden_states(alone)
        torch.testing.assert_close(packed[0, s:e].detach(), hidden[0].detach(), rtol=0, atol=2e-2)
        hidden[0].float().square().sum().backward()
    assert len(starts) >= 3
    assert cosine(packed_grads, _grads(model)) > 0.999
    with torch.no_grad():
        sdpa = PackedForward(_model("sdpa")).hidden_states(batch)
    torch.testing.assert_close(packed.detach().float(), sdpa.float(), rtol=0, atol=5e-2)
