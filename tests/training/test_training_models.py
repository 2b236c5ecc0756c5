"""The released architectures as configs, checked without weights (meta device)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from yue_train.data.packing import resolve_urls
from yue_train.format.vocab import MODEL_VOCAB_SIZE
from yue_train.models.architectures import architecture_config
from yue_train.models.loading import llama_module_names


def test_stage1_7b_matches_the_released_architecture():
    c = architecture_config("yue_s1_7b")
    got = (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.intermediate_size)
    assert got == (4096, 32, 32, 4, 11008)
    assert (c.max_position_embeddings, c.vocab_size, c.rms_norm_eps) == (16384, MODEL_VOCAB_SIZE, 1e-5)
    assert not c.tie_word_embeddings and not c.use_cache
    with torch.device("meta"):
        n = sum(p.numel() for p in AutoModelForCausalLM.from_config(c).parameters())
    assert 6.0e9 < n < 6.5e9  # LLaMA-2-7B layout with 4 KV heads and an 84k vocabulary: ~6.2B


def test_lora_targets_are_module_names_of_the_model():
    names = llama_module_names(architecture_config("tiny_s1"))
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"} <= names


def test_unknown_architecture_is_named():
    with pytest.raises(KeyError, match="unknown model architecture 'nope'"):
        architecture_config("nope")


def test_remote_shard_urls_are_brace_expanded_not_opened():
    assert resolve_urls("https://example.org/s-{000..002}.tar") == [
        f"https://example.org/s-00{i}.tar" for i in range(3)
    ]
