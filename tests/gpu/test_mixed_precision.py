"""bf16 autocast and FSDP2 mixed precision (bf16 compute, fp32 master weights) against fp32: same loss and
gradients within bf16 tolerance."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tests.gpu.helpers import CUDA, cosine, packed_batch
from tests.tiny_models import tiny_training_llama
from yue_train.training.forward import PackedLossModule
from yue_train.training.loss import LossSettings, role_weight_table

pytestmark = pytest.mark.gpu


def _loss_and_grads(autocast: bool) -> tuple[float, dict[str, torch.Tensor]]:
    module = PackedLossModule(tiny_training_llama("sdpa").to(CUDA).train(), role_weight_table({}, CUDA), LossSettings())
    batch, _ = packed_batch()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        sums = module(*batch.tensors())
    loss = sums[0] / sums[1]
    loss.backward()
    return float(loss), {n: p.grad for n, p in module.named_parameters()}


def test_bf16_autocast_matches_fp32():
    ref_loss, ref = _loss_and_grads(False)
    loss, grads = _loss_and_grads(True)
    assert abs(loss - ref_loss) / ref_loss < 1e-2
    for name, g in ref.items():
        assert cosine(grads[name], g) > 0.99, name


_FSDP2 = """
import torch
from tests.gpu.helpers import CUDA, cosine, packed_batch
from tests.tiny_models import tiny_training_llama
from yue_train.config.compose import compose_config
from yue_train.training import strategies as D
from yue_train.training.forward import PackedLossModule
from yue_train.training.loss import LossSettings, role_weight_table

D.init_process_group("fsdp2", "cuda")
batch, _ = packed_batch()
out = {}
for name in ("single", "fsdp2"):
    module = PackedLossModule(tiny_training_llama("sdpa").to(CUDA).train(), role_weight_table({}, CUDA), LossSettings())
    strategy = D.make_strategy(compose_config(["recipe=full_s1", f"distributed={name}"]).distributed, CUDA)
    strategy.autocast_bf16 = name == "fsdp2"  # FSDP2: MixedPrecisionPolicy(bf16 params, fp32 reduce)
    strategy.wrap(module, lambda ps: torch.optim.SGD(ps, lr=0.0), lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda _: 1.0))
    sums = strategy.forward(*batch.tensors())
    strategy.backward(sums[0] / sums[1], True)
    grads = {n: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).float() for n, p in module.named_parameters()}
    out[name] = (float(sums[0] / sums[1]), grads)
D.destroy_process_group()
(l32, g32), (lmp, gmp) = out["single"], out["fsdp2"]
assert abs(lmp - l32) / l32 < 1e-2, (lmp, l32)
for n in g32:
    assert cosine(gmp[n], g32[n]) > 0.99, n
print("OK")
"""


def test_fsdp2_mixed_precision_matches_fp32():
    proc = subprocess.run([sys.executable, "-c", _FSDP2], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
