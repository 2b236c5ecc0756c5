"""Tiny random LLaMA models with YuE's vocabulary size, for generation tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from yue_train.format import vocab


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float64, attn: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab.MODEL_VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        attn_implementation=attn,
    )
    model = LlamaForCausalLM(config).to(dtype).eval()
    # random init gives near-uniform logits; sharpen them so greedy choices are not decided by rounding
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    return model
