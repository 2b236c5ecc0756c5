"""Attention backends on packed rows: a document packed behind others gives the same logits and gradients as
the document alone. ``torch_varlen`` runs here through its CPU stand-in (one SDPA call per document, same
contract as torch's varlen kernel); the real kernel is tested in tests/gpu/test_torch_varlen.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import tiny_training_llama
from yue_train.data.packing import Batch, Packer
from yue_train.format.document import Document
from yue_train.format.roles import Role
from yue_train.models.attention import TORCH_VARLEN, choose_auto, document_bounds, varlen_attention_forward
from yue_train.models.loading import ModelSpec, attention_choice
from yue_train.training.forward import PackedForward


def _docs(lengths: tuple[int, ...], seed: int = 3) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [Document(rng.integers(0, 512, n), np.full(n, Role.VOCAL), {"id": str(i)}) for i, n in enumerate(lengths)]


def _loss_sum(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    fwd = PackedForward(model)
    logits = fwd.lm_head(fwd.hidden_states(batch)).float()
    loss = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), reduction="sum")
    return logits, loss


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_document_bounds_flatten_the_rows():
    pos = torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]])
    cu, longest = document_bounds(pos)
    assert cu.tolist() == [0, 3, 5, 9, 10] and cu.dtype == torch.int32
    assert longest == 4


@pytest.mark.parametrize("attn", ["sdpa", TORCH_VARLEN])
def test_packed_documents_match_each_document_alone_in_logits_and_gradients(attn):
    docs = _docs((37, 51, 29))
    model = tiny_training_llama(attn).train()
    packed = Packer(iter(docs), seq_len=128).next_batch(1)
    logits, loss = _loss_sum(model, packed)
    loss.backward()
    packed_grads = _grads(model)
    model.zero_grad(set_to_none=True)
    start = 0
    for doc in docs:
        n = len(doc.input_ids)
        alone = Packer(iter([doc]), seq_len=n).next_batch(1)
        alone_logits, alone_loss = _loss_sum(model, alone)
        torch.testing.assert_close(logits[0, start : start + n], alone_logits[0], rtol=0, atol=1e-5)
        alone_loss.backward()  # gradients add up over the documents
        start += n
    for name, g in _grads(model).items():
        torch.testing.assert_close(packed_grads[name], g, rtol=1e-4, atol=1e-5, msg=name)


def test_torch_varlen_stand_in_agrees_with_sdpa_on_two_packed_rows():
    batch = Packer(iter(_docs((40, 70, 25, 90, 33))), seq_len=96, overflow="split").next_batch(2)
    with torch.no_grad():
        ours = PackedForward(tiny_training_llama(TORCH_VARLEN)).hidden_states(batch)
        sdpa = PackedForward(tiny_training_llama("sdpa")).hidden_states(batch)
        leaky = tiny_training_llama("sdpa").model(input_ids=batch.input_ids, use_cache=False).last_hidden_state
    torch.testing.assert_close(ours, sdpa, rtol=0, atol=1e-5)
    assert (leaky - sdpa).abs().max() > 1e-2  # the control: without the restarting positions documents mix


def test_torch_varlen_refuses_a_kv_cache():
    q = torch.zeros(1, 4, 1, 8)
    kv = torch.zeros(1, 4, 5, 8)
    with pytest.raises(ValueError, match="no KV cache"):
        varlen_attention_forward(torch.nn.Module(), q, kv, kv, None, position_ids=torch.tensor([[4]]))


def test_auto_choice_says_why():
    cpu = attention_choice(ModelSpec(), torch.device("cpu"))
    assert cpu.impl == "sdpa" and "per-document" in cpu.line()
    cuda = choose_auto(torch.device("cuda"))  # only the device type is looked at: no GPU needed
    have_flash = __import__("importlib").util.find_spec("flash_attn") is not None
    assert cuda.impl == ("flash_attention_2" if have_flash else TORCH_VARLEN)  # torch here is >= 2.10
    assert attention_choice(ModelSpec(attn_implementation="eager"), torch.device("cpu")).reason.startswith("set by")
    with pytest.raises(ValueError, match="does not train on CPU"):
        attention_choice(ModelSpec(attn_implementation=TORCH_VARLEN), torch.device("cpu"))
