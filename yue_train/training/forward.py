"""The one training forward pass: packed rows in, final hidden states out.

Packed documents are kept apart by transformers itself: with ``position_ids`` restarting at 0 per
document and *no* attention mask, its mask builders (sdpa, eager, flex) make a per-document causal mask,
and flash-attention 2 switches to its varlen kernel. That holds only when no KV cache is created: with
``use_cache=True`` (the LLaMA default, also in training mode) documents silently attend to each other.
So every training and evaluation forward goes through :class:`PackedForward`, which always passes
``use_cache=False`` and no mask, and refuses outputs that carry a cache.

The model is called without labels and its ``lm_head`` is not run here: :mod:`.loss` computes logits
from these hidden states, chunk by chunk when memory asks for it (labels were shifted once, by the packer).
"""

from __future__ import annotations

import torch
from torch import nn

from yue_train.data.packing import Batch
from yue_train.training.loss import LossSettings, lm_loss


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers ``*ForCausalLM`` inside PEFT / DDP / FSDP wrappers."""
    while True:
        if hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):  # DDP
            model = model.module
        else:
            return model


class PackedForward:
    """Calls a causal LM's decoder the only safe way for packed rows, and exposes its ``lm_head``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        causal_lm = unwrap(model)
        self.decoder = causal_lm.get_decoder()
        self.lm_head = causal_lm.get_output_embeddings()
        causal_lm.config.use_cache = False

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        check_positions(batch.position_ids)
        out = self.decoder(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            attention_mask=None,  # the per-document mask is built from position_ids
            use_cache=False,  # a cache merges packed documents (see module docstring)
        )
        # By key: the output is a dict, and touching the old name logs a deprecation warning in transformers 5.
        if any(out[k] is not None for k in set(out.keys()) & {"cache", "past_key_values"}):
            raise RuntimeError("the decoder returned a KV cache during training; packed documents would leak")
        return out.last_hidden_state


def check_positions(position_ids: torch.Tensor) -> None:
    """Each row must be runs of 0, 1, 2, ...: anything else means the batch was not built by the packer."""
    pos = position_ids
    ok = (pos[:, :1] == 0).all() and ((pos[:, 1:] == pos[:, :-1] + 1) | (pos[:, 1:] == 0)).all()
    if not bool(ok):
        raise ValueError("position_ids must restart at 0 per document and count up by 1 inside it")


class PackedLossModule(nn.Module):
    """Causal LM + loss as one ``nn.Module``: packed batch tensors in, loss sums out.

    The distributed wrappers (DDP, FSDP2, DeepSpeed) hook into a module's ``forward``: DDP prepares its
    gradient reduction there and FSDP2 gathers the root's parameters (embeddings, final norm, ``lm_head``)
    there. The training step calls the decoder and the ``lm_head`` separately (the loss may be chunked),
    so it is this module, whose ``forward`` does both, that gets wrapped. ``lm`` keeps the Hugging Face
    (or PEFT) parameter names under the ``lm.`` prefix. ``last_impl`` names the implementation the last
    forward used.
    """

    def __init__(self, lm: nn.Module, weight_table: torch.Tensor, loss: LossSettings) -> None:
        super().__init__()
        self.lm = lm
        self.packed = PackedForward(lm)
        self.register_buffer("weight_table", weight_table.float(), persistent=False)
        self.loss = loss
        self.last_impl = ""

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor, target_roles: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        batch = Batch(input_ids, position_ids, labels, target_roles)
        sums, self.last_impl = lm_loss(
            self.packed.hidden_states(batch), self.packed.lm_head, labels, target_roles, self.weight_table, self.loss
        )
        # A tuple of tensors (not the dataclass) so every wrapper passes it through untouched.
        return sums.tensors()
