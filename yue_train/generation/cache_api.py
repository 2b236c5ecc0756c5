"""The name of the KV-cache argument of Hugging Face causal LMs.

transformers 5.x renamed ``past_key_values`` to ``cache`` (argument and output field); generation here
drives the model step by step, so it asks the model which name it takes instead of pinning a version.
A PEFT wrapper passes the argument through to its base model, so the base model is asked.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch


@lru_cache(maxsize=16)
def _cache_arg(model_type: type) -> str:
    params = inspect.signature(model_type.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def forward_step(model: torch.nn.Module, input_ids: torch.Tensor, cache, **kwargs):
    """One forward with a KV cache; returns (last-position logits in fp32, the updated cache)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = _cache_arg(type(base))
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{name: cache}, **kwargs)
    return out.logits[:, -1].float(), getattr(out, name)
