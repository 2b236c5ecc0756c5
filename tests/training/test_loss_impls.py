"""Every ``trainer.loss.impl`` gives the reference loss, per-role sums and gradients on packed documents,
and ``auto`` picks by the memory rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import tiny_training_llama
from yue_train.data.packing import IGNORE_INDEX, Packer
from yue_train.format.document import Document
from yue_train.format.roles import Role
from yue_train.models.lora import apply_lora
from yue_train.training.forward import PackedForward, PackedLossModule
from yue_train.training.loss import LossSettings, choose_impl, lm_loss, role_weight_table

TORCH_IMPLS = ["full", "chunked", "chunked_recompute"]
WEIGHTS = {"prompt_vocal": 0.0, "inst": 0.5}


def _batch():
    rng = np.random.default_rng(7)
    docs = [
        Document(rng.integers(0, 512, n), np.full(n, role), {"id": str(i)})
        for i, (n, role) in enumerate([(23, Role.PROMPT_VOCAL), (41, Role.VOCAL), (30, Role.INST), (57, Role.VOCAL)])
    ]
    return Packer(iter(docs), seq_len=80, overflow="split").next_batch(2)  # two rows, a document split across


def _reference(model, batch, table):
    """Plain full-logits cross-entropy from the model's own modules, written out independently."""
    fwd = PackedForward(model)
    logits = fwd.lm_head(fwd.hidden_states(batch)).float().flatten(0, 1)
    labels = batch.labels.flatten()
    ce = F.cross_entropy(logits, labels, reduction="none", ignore_index=IGNORE_INDEX)
    keep = labels != IGNORE_INDEX
    w = table[batch.target_roles.flatten()] * keep
    per_role = {
        r: float(ce.detach()[keep & (batch.target_roles.flatten() == r)].sum()) for r in (Role.VOCAL, Role.INST)
    }
    return (ce * w).sum() / w.sum(), per_role


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _run(model, batch, table, settings, scale=1.0):
    model.zero_grad(set_to_none=True)
    fwd = PackedForward(model)
    sums, impl = lm_loss(fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, table, settings)
    (scale * sums.weighted / sums.weight_sum).backward()
    return sums, impl, _grads(model)


@pytest.mark.parametrize("lora", [False, True], ids=["full_ft", "lora"])
@pytest.mark.parametrize("impl", TORCH_IMPLS)
def test_impl_matches_reference_loss_roles_and_gradients(impl, lora):
    model = tiny_training_llama("sdpa").train()
    if lora:
        model = apply_lora(model, type("L", (), {"r": 4, "alpha": 8, "dropout": 0.0,
                                                 "target_modules": ["q_proj", "v_proj"]})())  # fmt: skip
    batch = _batch()
    table = role_weight_table(WEIGHTS)
    model.zero_grad(set_to_none=True)
    ref_loss, ref_roles = _reference(model, batch, table)
    ref_loss.backward()
    ref_grads = _grads(model)
    assert ref_grads and ("lm_head.weight" in " ".join(ref_grads)) != lora  # LoRA: lm_head frozen
    sums, used, grads = _run(model, batch, table, LossSettings(impl, chunk_size=13))  # ragged last chunk
    assert used == impl
    torch.testing.assert_close((sums.weighted / sums.weight_sum).float(), ref_loss.detach(), rtol=1e-5, atol=1e-6)
    for role, total in ref_roles.items():
        assert abs(float(sums.role_loss[role]) - total) < 1e-3
    assert float(sums.role_count.sum()) == int((batch.labels != IGNORE_INDEX).sum())
    assert 0 <= float(sums.role_correct.sum()) <= float(sums.role_count.sum())
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_impls_agree_on_accuracy_and_scale_linearly():
    """Same argmax hits for every impl; a scaled loss (gradient accumulation) scales the gradients."""
    model = tiny_training_llama("sdpa").train()
    batch, table = _batch(), role_weight_table(WEIGHTS)
    hits = {i: _run(model, batch, table, LossSettings(i, 16))[0].role_correct for i in TORCH_IMPLS}
    assert all(torch.equal(h, hits["full"]) for h in hits.values())
    _, _, g1 = _run(model, batch, table, LossSettings("chunked", 16))
    _, _, g3 = _run(model, batch, table, LossSettings("chunked", 16), scale=0.25)
    for name, g in g1.items():
        torch.testing.assert_close(g3[name], 0.25 * g, rtol=1e-5, atol=1e-8)


def test_chunked_runs_lm_head_once_and_recompute_twice():
    model = tiny_training_llama("sdpa").train()
    batch, table = _batch(), role_weight_table({})
    calls = []
    model.lm_head.register_forward_hook(lambda *_: calls.append(1))
    n_chunks = -(-int((batch.labels != IGNORE_INDEX).sum()) // 16)
    for impl, per_chunk in (("chunked", 1), ("chunked_recompute", 2)):
        calls.clear()
        _run(model, batch, table, LossSettings(impl, 16))
        assert len(calls) == per_chunk * n_chunks, impl


def test_no_grad_forward_matches_and_keeps_nothing():
    model = tiny_training_llama("sdpa")
    batch, table = _batch(), role_weight_table(WEIGHTS)
    fwd = PackedForward(model)
    with torch.no_grad():
        h = fwd.hidden_states(batch)
        out = [lm_loss(h, fwd.lm_head, batch.labels, batch.target_roles, table, LossSettings(i, 9))[0]
               for i in TORCH_IMPLS]  # fmt: skip
    assert all(o.weighted.grad_fn is None for o in out)
    for o in out[1:]:
        torch.testing.assert_close(o.weighted, out[0].weighted, rtol=1e-5, atol=1e-5)


def test_auto_follows_the_memory_rule():
    """The rule of yue_train/training/loss.py, at the issue's sizes (V = 83,968, H = 256), on its edges."""
    v, hdim, cpu = 83_968, 256, torch.device("cpu")
    frozen = torch.nn.Linear(hdim, v, bias=False).requires_grad_(False)
    trainable = torch.nn.Linear(hdim, v, bias=False)

    def pick(n, chunk, budget_bytes, head=frozen):
        return choose_impl(LossSettings("auto", chunk, budget_bytes / 2**30), n, head, hdim, cpu)

    full = 3 * 2048 * v * 4  # full logits of 2,048 positions: 1.92 GiB
    assert pick(2048, 1024, full) == "full" and pick(2048, 1024, full - 1) == "chunked"
    chunked = 2 * 1024 * v * 4 + 2048 * hdim * 4
    assert pick(2048, 1024, chunked) == "chunked" and pick(2048, 1024, chunked - 1) == "chunked_recompute"
    assert pick(2048, 1024, chunked + v * hdim * 4, trainable) == "chunked"  # + the lm_head gradient
    assert pick(2048, 1024, chunked + v * hdim * 4 - 1, trainable) == "chunked_recompute"
    assert pick(100, 1024, 2**30) == "full"  # a short batch: full logits fit the default budget
    assert LossSettings().memory_budget_gib == 1.0 and pick(2048, 1024, 2**30) == "chunked"  # the CPU benchmark


def test_packed_loss_module_reports_the_impl_it_used():
    model = tiny_training_llama("sdpa").train()
    batch = _batch()
    table = role_weight_table({})
    tight = PackedLossModule(model, table, LossSettings("auto", 16, 1e-4))
    roomy = PackedLossModule(model, table, LossSettings("auto", 16, 1.0))
    a, b = tight(*batch.tensors()), roomy(*batch.tensors())
    assert (tight.last_impl, roomy.last_impl) == ("chunked_recompute", "full")
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-5)


def test_bad_settings_are_one_line():
    with pytest.raises(ValueError, match="trainer.loss.impl must be one of auto, full, chunked"):
        LossSettings("fast")


_FSDP2_SCRIPT = """
import sys, json, torch
from tests.tiny_models import tiny_training_llama
from tests.training.test_loss_impls import _batch
from yue_train.config.compose import compose_config
from yue_train.training import strategies as D
from yue_train.training.forward import PackedLossModule
from yue_train.training.loss import LossSettings, role_weight_table

dcfg = compose_config(["recipe=full_s1", "distributed=fsdp2"]).distributed
D.init_process_group("fsdp2", "cpu")
out = {}
for impl in ("full", "chunked"):
    module = PackedLossModule(tiny_training_llama("sdpa").train(), role_weight_table({"inst": 0.5}), LossSettings(impl, 16))
    strategy = D.make_strategy(dcfg, torch.device("cpu"))
    strategy.wrap(module, lambda ps: torch.optim.SGD(ps, lr=0.1), lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda _: 1.0))
    sums = strategy.forward(*_batch().tensors())
    strategy.backward(sums[0] / sums[1], True)
    grads = {n: p.grad.full_tensor() for n, p in module.named_parameters()}
    out[impl] = (float(sums[0] / sums[1]), grads, module.last_impl)
D.destroy_process_group()
(lf, gf, _), (lc, gc, used) = out["full"], out["chunked"]
assert used == "chunked" and abs(lf - lc) < 1e-5, (lf, lc, used)
assert "lm.lm_head.weight" in gc and gc.keys() == gf.keys()
for n in gf:
    torch.testing.assert_close(gc[n], gf[n], rtol=1e-4, atol=1e-6, msg=n)
print("OK", len(gf))
"""


@pytest.mark.slow
def test_chunked_gradients_under_fsdp2_match_full():
    """The gradients chunked forms in its forward reach FSDP2's sharded parameters (lm_head included)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    proc = subprocess.run([sys.executable, "-c", _FSDP2_SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
