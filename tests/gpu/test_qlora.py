"""QLoRA: a 4-bit (bitsandbytes NF4) base with LoRA adapters trains: finite, falling loss, only adapters move."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.helpers import CUDA, packed_batch
from tests.tiny_models import tiny_training_llama
from yue_train.models.loading import ModelSpec, build_model, enable_activation_checkpointing
from yue_train.models.lora import apply_lora
from yue_train.training.forward import PackedLossModule
from yue_train.training.loss import LossSettings, role_weight_table

pytestmark = pytest.mark.gpu


class _Lora:
    r, alpha, dropout, target_modules = 8, 16, 0.0, ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_qlora_training_steps(tmp_path):
    bnb = pytest.importorskip(
        "bitsandbytes", reason="bitsandbytes is not installed (benchmarks/gpu_suite.sh installs it)"
    )
    tiny_training_llama("sdpa").save_pretrained(tmp_path / "base")
    model = build_model(ModelSpec(path=str(tmp_path / "base"), load_in_4bit=True, attn_implementation="sdpa"), CUDA)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    enable_activation_checkpointing(model)
    model = apply_lora(model, _Lora())
    module = PackedLossModule(model, role_weight_table({}, CUDA), LossSettings()).train()
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in module.named_parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(trainable, lr=3e-3)
    batch, _ = packed_batch()
    losses = []
    for _ in range(8):
        sums = module(*batch.tensors())
        loss = sums[0] / sums[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0] - 0.05, losses
    assert any(not torch.equal(p, before[n]) for n, p in module.named_parameters() if p.requires_grad)
