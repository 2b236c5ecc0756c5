"""trainer.loss.impl=fused (liger-kernel) against the plain full-logits reference, and auto choosing it."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.helpers import CUDA, packed_batch
from tests.tiny_models import tiny_training_llama
from yue_train.training.forward import PackedForward
from yue_train.training.loss import LossSettings, choose_impl, lm_loss, role_weight_table

pytestmark = pytest.mark.gpu


def _run(model, impl):
    batch, _ = packed_batch()
    model.zero_grad(set_to_none=True)
    fwd = PackedForward(model)
    table = role_weight_table({"prompt_vocal": 0.0, "inst": 0.5}, CUDA)
    sums, used = lm_loss(
        fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, table, LossSettings(impl)
    )
    (sums.weighted / sums.weight_sum).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return sums, used, grads


@pytest.mark.parametrize("train_head", [True, False])
def test_fused_loss_matches_reference(train_head):
    pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (benchmarks/gpu_suite.sh installs it)")
    model = tiny_training_llama("sdpa").to(CUDA).train()
    model.lm_head.weight.requires_grad_(train_head)
    ref, _, ref_grads = _run(model, "full")
    got, used, grads = _run(model, "fused")
    assert used == "fused"
    torch.testing.assert_close(
        got.weighted / got.weight_sum, (ref.weighted / ref.weight_sum).float(), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(got.role_loss, ref.role_loss, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got.role_count, ref.role_count)
    assert (got.role_correct - ref.role_correct).abs().max() <= 1  # argmax ties may differ by rounding
    assert grads.keys() == ref_grads.keys() and ("lm_head.weight" in grads) == train_head
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-3, atol=1e-5, msg=name)


def test_auto_picks_fused_on_cuda_with_liger():
    pytest.importorskip("liger_kernel", reason="liger-kernel is not installed (benchmarks/gpu_suite.sh installs it)")
    head = torch.nn.Linear(64, 1000, bias=False, device=CUDA)
    assert choose_impl(LossSettings(), 8192, head, 64, CUDA) == "fused"
    assert choose_impl(LossSettings(), 8192, head, 64, torch.device("cpu")) != "fused"
