"""Packing, label shifting, document isolation and the chunked loss, on real tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import tiny_training_llama
from yue_train.data.packing import IGNORE_INDEX, Packer
from yue_train.format.document import Document
from yue_train.format.roles import ROLE_NAMES, Role
from yue_train.training.forward import PackedForward, check_positions
from yue_train.training.loss import LossSettings, lm_loss, role_weight_table


def _doc(ids, role=Role.VOCAL, doc_id="d"):
    ids = np.asarray(ids)
    return Document(ids, np.full(len(ids), role), {"id": doc_id})


def test_packer_shifts_labels_once_per_document_and_restarts_positions():
    docs = iter([_doc([1, 2, 3]), _doc([4, 5, 6, 7], Role.INST), _doc([8, 9])])
    batch = Packer(docs, seq_len=8).next_batch(1)
    assert batch.input_ids[0].tolist() == [1, 2, 3, 4, 5, 6, 7, 0]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 0, 1, 2, 3, 0]
    # next token inside each document; the last token of a document predicts nothing; padding neither
    assert batch.labels[0].tolist() == [2, 3, -100, 5, 6, 7, -100, -100]
    assert batch.target_roles[0, 3:6].tolist() == [Role.INST] * 3


def test_packer_next_row_and_split_modes():
    mk = lambda: iter([_doc(range(1, 6)), _doc(range(10, 14)), _doc(range(20, 40))])  # noqa: E731
    rows = Packer(mk(), seq_len=8, overflow="next_row")
    b = rows.next_batch(4)
    assert b.input_ids[0].tolist() == [1, 2, 3, 4, 5, 0, 0, 0]  # doc 2 did not fit: starts the next row
    assert b.input_ids[1].tolist() == [10, 11, 12, 13, 0, 0, 0, 0]  # the 20-token doc goes to row 3, cut
    assert b.input_ids[2].tolist() == list(range(20, 28)) and b.labels[2, -1].item() == 28
    assert b.input_ids[3].tolist() == list(range(28, 36)) and b.position_ids[3, 0].item() == 0
    split = Packer(mk(), seq_len=8, overflow="split").next_batch(1)
    assert split.input_ids[0].tolist() == [1, 2, 3, 4, 5, 10, 11, 12]
    assert split.labels[0].tolist() == [2, 3, 4, 5, -100, 11, 12, 13]


def test_check_positions_rejects_unpacked_positions():
    check_positions(torch.tensor([[0, 1, 2, 0, 1]]))
    with pytest.raises(ValueError):
        check_positions(torch.tensor([[0, 1, 3, 4, 5]]))


def _per_token_ce(model, batch) -> torch.Tensor:
    fwd = PackedForward(model)
    logits = fwd.lm_head(fwd.hidden_states(batch)).float()
    return F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), reduction="none").view(batch.labels.shape)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_document_loss_equals_loss_alone(attn):
    """A document packed behind others has the same per-token loss as alone."""
    model = tiny_training_llama(attn)
    rng = np.random.default_rng(1)
    a, b, c = (_doc(rng.integers(0, 512, n)) for n in (37, 51, 29))
    packed = Packer(iter([a, b, c]), seq_len=128).next_batch(1)
    alone = Packer(iter([c]), seq_len=128).next_batch(1)
    with torch.no_grad():
        ce_packed = _per_token_ce(model, packed)[0, 88 : 88 + 28]
        ce_alone = _per_token_ce(model, alone)[0, :28]
    torch.testing.assert_close(ce_packed, ce_alone, rtol=0, atol=1e-5)
    # The control: the same packed row with a KV cache (the default) leaks across documents.
    with torch.no_grad():
        leaky = model.model(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=True)
        logits = model.lm_head(leaky.last_hidden_state)[0, 88 : 88 + 28]
    assert (F.cross_entropy(logits, packed.labels[0, 88 : 88 + 28], reduction="none") - ce_alone).abs().max() > 1e-3


def test_packed_forward_ignores_a_cache_enabled_config():
    """Even if someone turns use_cache back on in the model config, the training forward stays isolated."""
    model = tiny_training_llama("sdpa")
    rng = np.random.default_rng(2)
    a, c = _doc(rng.integers(0, 512, 40)), _doc(rng.integers(0, 512, 30))
    packed = Packer(iter([a, c]), seq_len=80).next_batch(1)
    alone = Packer(iter([c]), seq_len=80).next_batch(1)
    fwd = PackedForward(model)
    model.config.use_cache = True
    with torch.no_grad():
        torch.testing.assert_close(
            fwd.hidden_states(packed)[0, 40:70], fwd.hidden_states(alone)[0, :30], rtol=0, atol=1e-5
        )


def test_labels_shifted_exactly_once_matches_hf_loss():
    """Our loss on one document equals HF's own loss given unshifted labels (HF shifts once internally)."""
    model = tiny_training_llama("sdpa")
    ids = np.random.default_rng(3).integers(0, 512, 64)
    batch = Packer(iter([_doc(ids)]), seq_len=64).next_batch(1)
    fwd = PackedForward(model)
    with torch.no_grad():
        settings = LossSettings("chunked_recompute", 16)
        ours, _ = lm_loss(
            fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, role_weight_table({}), settings
        )
        hf = model(input_ids=torch.as_tensor(ids)[None], labels=torch.as_tensor(ids)[None], use_cache=False).loss
    torch.testing.assert_close(ours.weighted / ours.weight_sum, hf.double(), rtol=0, atol=1e-5)
    assert int(ours.weight_sum) == 63


def test_chunked_loss_matches_full_loss_and_gradients():
    model = tiny_training_llama("sdpa").train()
    ids = np.random.default_rng(4).integers(0, 512, 100)
    batch = Packer(iter([_doc(ids[:60]), _doc(ids[60:], Role.INST)]), seq_len=128).next_batch(1)
    fwd = PackedForward(model)
    table = role_weight_table({})

    def grads_and_loss(chunk):
        model.zero_grad()
        settings = LossSettings("chunked_recompute", chunk)
        s, _ = lm_loss(fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, table, settings)
        (s.weighted / s.weight_sum).backward()
        return float((s.weighted / s.weight_sum).detach()), [p.grad.clone() for p in model.parameters()]

    loss_full, g_full = grads_and_loss(10_000)
    loss_chunk, g_chunk = grads_and_loss(7)  # checkpointed chunks, ragged last chunk
    assert math.isclose(loss_full, loss_chunk, rel_tol=1e-6)
    for a, b in zip(g_full, g_chunk, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    ce = _per_token_ce(model, batch)
    assert math.isclose(loss_full, float(ce[batch.labels != IGNORE_INDEX].mean().detach()), rel_tol=1e-5)


def test_role_weights_mask_and_per_role_reports():
    model = tiny_training_llama("sdpa")
    rng = np.random.default_rng(5)
    batch = Packer(
        iter([_doc(rng.integers(0, 512, 30), Role.PROMPT_VOCAL), _doc(rng.integers(0, 512, 40))]), 80
    ).next_batch(1)
    fwd = PackedForward(model)
    with torch.no_grad():
        h = fwd.hidden_states(batch)
        table = role_weight_table({"prompt_vocal": 0})
        masked, _ = lm_loss(
            h, fwd.lm_head, batch.labels, batch.target_roles, table, LossSettings("chunked_recompute", 16)
        )
        ce = _per_token_ce(model, batch)[0]
    vocal = (batch.target_roles[0] == Role.VOCAL) & (batch.labels[0] != IGNORE_INDEX)
    prompt = (batch.target_roles[0] == Role.PROMPT_VOCAL) & (batch.labels[0] != IGNORE_INDEX)
    rep = masked.report()
    assert math.isclose(rep["loss"], float(ce[vocal].mean()), rel_tol=1e-5)  # prompt tokens carry no loss
    assert math.isclose(rep["loss/prompt_vocal"], float(ce[prompt].mean()), rel_tol=1e-5)  # but are reported
    assert masked.role_count[Role.PROMPT_VOCAL] == 29 and masked.role_count[Role.VOCAL] == 39
    assert 0.0 <= rep["acc/vocal"] <= 1.0 and f"loss/{ROLE_NAMES[Role.INST]}" not in rep
    with pytest.raises(ValueError, match="unknown role"):
        role_weight_table({"vocals": 0})


def test_activation_checkpointing_with_lora_gives_the_same_gradients():
    from types import SimpleNamespace

    from yue_train.models.loading import enable_activation_checkpointing
    from yue_train.models.lora import apply_lora

    lora = SimpleNamespace(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    rng = np.random.default_rng(6)
    batch = Packer(iter([_doc(rng.integers(0, 512, 50)), _doc(rng.integers(0, 512, 40))]), 96).next_batch(1)

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        base = tiny_training_llama("sdpa", seed=7)
        if checkpointing:
            enable_activation_checkpointing(base)
            assert base.model.gradient_checkpointing  # the layers really recompute
        torch.manual_seed(8)
        model = apply_lora(base, lora).train()
        for n, p in model.named_parameters():  # LoRA B starts at 0: give it values so A gets gradients too
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02)
        fwd = PackedForward(model)
        settings = LossSettings("chunked_recompute")
        s, _ = lm_loss(
            fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, role_weight_table({}), settings
        )
        (s.weighted / s.weight_sum).backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, ckpt = grads(False), grads(True)
    assert plain.keys() == ckpt.keys() and len(plain) == 8
    for n in plain:
        assert plain[n].abs().sum() > 0
        torch.testing.assert_close(plain[n], ckpt[n], rtol=1e-4, atol=1e-7)
