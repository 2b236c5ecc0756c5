"""One cached forward step of a Hugging Face causal LM, with a dynamic or a static KV cache.

transformers 5.x renamed ``past_key_values`` to ``cache`` (argument and output field); generation here
drives the model step by step, so it asks the model which name it takes instead of pinning a version.
A PEFT wrapper passes the argument through to its base model, so the base model is asked.

A static cache (:func:`static_cache`) has its final size from the start, and the attention mask that goes
with it is the full-length mask, filled in place as positions are written: every per-token step then has
the same shapes, which is what ``torch.compile`` with CUDA graphs (:func:`compiled_step`) needs.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch


@lru_cache(maxsize=16)
def _cache_arg(model_type: type) -> str:
    params = inspect.signature(model_type.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def forward_step(model: torch.nn.Module, input_ids: torch.Tensor, cache, runner=None, **kwargs):
    """One forward with a KV cache; returns (last-position logits in fp32, the updated cache). ``runner``:
    what to call instead of ``model`` (its compiled form)."""
    name = _cache_arg(type(_base(model)))
    out = (model if runner is None else runner)(
        input_ids=input_ids, use_cache=True, logits_to_keep=1, **{name: cache}, **kwargs
    )
    return out.logits[:, -1].float(), getattr(out, name)


def static_cache(model: torch.nn.Module, attention_mask: torch.Tensor, max_len: int):
    """A static KV cache of ``max_len`` positions for the rows of ``attention_mask`` (B, n), and that mask
    widened to (B, max_len) with zeros: set ``mask[:, i] = 1`` when position ``i`` is written."""
    from transformers import StaticCache

    cache = StaticCache(config=_base(model).config, max_cache_len=max_len)
    mask = attention_mask.new_zeros(attention_mask.shape[0], max_len)
    mask[:, : attention_mask.shape[1]] = attention_mask
    return cache, mask


def compiled_step(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` under ``torch.compile`` for fixed-shape per-token steps (CUDA graphs on a GPU)."""
    return torch.compile(model, mode="reduce-overhead", dynamic=False)
