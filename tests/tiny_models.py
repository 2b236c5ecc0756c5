"""The tiny random LLaMA models of the tests, built in one place.

Every tiny model has the same shape (hidden 32, 2 layers, 4 heads, 2 key-value heads, untied head); what
differs is the vocabulary: YuE's (``MODEL_VOCAB_SIZE``) for prompts and generation, or 512 ids for the
training tests that feed random-token shards. Weights are drawn in float32 from ``seed`` and then cast, so
one seed gives the same model in every dtype.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from yue_train.format import vocab as yue_vocab

RANDOM_SHARD_VOCAB = 512  # tests/training/helpers.py write_random_shards draws ids below it


def tiny_llama_config(vocab: int = yue_vocab.MODEL_VOCAB_SIZE, max_positions: int = 4096) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=max_positions, tie_word_embeddings=False,
    )  # fmt: skip


def tiny_llama(
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    attn: str = "sdpa",
    *,
    vocab: int = yue_vocab.MODEL_VOCAB_SIZE,
    sharpen: bool = True,
    max_positions: int = 4096,
) -> LlamaForCausalLM:
    """A tiny model in eval mode. ``sharpen``: the head's weights times 20, since random init gives near-uniform
    logits and greedy choices between them would be decided by rounding."""
    torch.manual_seed(seed)
    cfg = tiny_llama_config(vocab, max_positions)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=attn, dtype=torch.float32).to(dtype).eval()
    if sharpen:
        with torch.no_grad():
            model.lm_head.weight.mul_(20)
    return model


def tiny_training_llama(attn: str = "sdpa", seed: int = 0) -> LlamaForCausalLM:
    """The training tests' model: float32, the 512-id vocabulary of the random shards, logits as drawn."""
    return tiny_llama(seed, torch.float32, attn, vocab=RANDOM_SHARD_VOCAB, sharpen=False, max_positions=512)


def wrong_vocab_llama_config() -> LlamaConfig:
    """A one-layer config whose 50,000-id vocabulary is too small for YuE's tokens (the refusal tests)."""
    return LlamaConfig(
        vocab_size=50_000, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
