"""The released YuE architectures (and tiny stand-ins for tests and the demo) as ``LlamaConfig`` values.

Stage 1 (``m-a-p/YuE-s1-7B-*``), as in the released config: LLaMA, hidden
4,096, 32 layers, 32 heads, 4 KV heads, MLP 11,008, 16,384 positions, rope theta 10,000, RMS eps 1e-5,
83,968 embedding rows, untied embeddings.

Stage 2 (``m-a-p/YuE-s2-1B-general``): a LLaMA ~1B layout with plausible shapes, not checked against the
released ``config.json``. It is used only when a stage-2 model is built from random weights (benchmarks, smoke
tests); stage-2 training loads ``model.path``, whose own ``config.json`` wins.
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig

from yue_train.format.vocab import MODEL_VOCAB_SIZE

_COMMON: dict[str, Any] = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "attention_bias": False,
    "mlp_bias": False,
}

ARCHITECTURES: dict[str, dict[str, Any]] = {
    # Stage 1, 7B: from the released config (see module docstring).
    "yue_s1_7b": {
        "vocab_size": MODEL_VOCAB_SIZE,
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "intermediate_size": 11008,
        "max_position_embeddings": 16384,
        "rope_theta": 10000.0,
    },
    # Stage 2, ~1B: placeholder values (see module docstring).
    "yue_s2_1b": {
        "vocab_size": MODEL_VOCAB_SIZE,
        "hidden_size": 2048,
        "num_hidden_layers": 18,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "intermediate_size": 5504,
        "max_position_embeddings": 8192,
        "rope_theta": 10000.0,
    },
    # Tiny stage-1 stand-in with the real vocabulary: the demo and CLI tests (CPU, seconds).
    "tiny_s1": {
        "vocab_size": MODEL_VOCAB_SIZE,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 172,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
    },
}
# tiny_s2: tiny_s1 without grouped-query attention. tiny_v512: over a 512-token vocabulary, for leakage tests on
# random tokens (loss floor ln 512).
ARCHITECTURES["tiny_s2"] = {**ARCHITECTURES["tiny_s1"], "num_key_value_heads": 4}
ARCHITECTURES["tiny_v512"] = {
    **ARCHITECTURES["tiny_s1"],
    "vocab_size": 512,
    "intermediate_size": 128,
    "max_position_embeddings": 1024,
}


# The YuE stage each named architecture plays (``model.stage`` in the config says it for any model).
ARCHITECTURE_STAGES: dict[str, int] = {"yue_s1_7b": 1, "yue_s2_1b": 2, "tiny_s1": 1, "tiny_s2": 2}


def architecture_config(name: str, **overrides: Any) -> LlamaConfig:
    """The ``LlamaConfig`` of a named architecture; ``overrides`` replace single fields."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown model architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    kwargs = {**_COMMON, **ARCHITECTURES[name], **overrides}
    # Training never uses a KV cache (a cache silently breaks packed-document isolation, see
    # yue_train.training.forward); inference turns it on explicitly.
    kwargs.setdefault("use_cache", False)
    return LlamaConfig(**kwargs)
