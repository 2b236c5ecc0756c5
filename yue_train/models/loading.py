"""Build or load a YuE model through transformers (:mod:`.hub`): random weights of a named architecture, or a
pretrained checkpoint from a local folder or a hub id (``m-a-p/YuE-s1-7B-anneal-en-cot``, ...).

``attn_implementation: auto`` takes :func:`.attention.choose_auto`'s backend. ``flex_attention`` also keeps
packed documents apart but is chosen only explicitly: it needs torch.compile to be fast and has no CPU backward.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from yue_train.models import hub
from yue_train.models.architectures import ARCHITECTURES, architecture_config
from yue_train.models.attention import TORCH_VARLEN, AttentionChoice, choose_auto

CPU_ATTENTION = ("sdpa", "eager")
ALL_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flex_attention", TORCH_VARLEN)


@dataclass
class ModelSpec:
    """What ``cfg.model`` says: a named architecture (random init) or a pretrained ``path``/hub id."""

    name: str | None = None
    path: str | None = None
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    attn_implementation: str = "auto"
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    overrides: dict[str, Any] | None = None  # config fields replaced when building a named architecture

    @classmethod
    def from_cfg(cls, cfg: Any) -> ModelSpec:
        fields = cls.__dataclass_fields__
        return cls(**{k: (dict(v) if k == "overrides" and v is not None else v) for k, v in cfg.items() if k in fields})

    def describe(self) -> str:
        return self.path or f"{self.name} (random init)"


def load_model_config(spec: ModelSpec) -> PretrainedConfig:
    """The model's config without its weights (cheap: used by config validation before heavy work)."""
    if spec.path:
        return hub.load_config(spec.path)
    if not spec.name:
        raise ValueError("model: set model.name (a known architecture) or model.path (a folder or hub id)")
    if spec.name not in ARCHITECTURES:
        raise ValueError(
            f"model.name={spec.name!r} is not a known architecture; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return architecture_config(spec.name, **(spec.overrides or {}))


def resolve_dtype(spec: ModelSpec, device: torch.device) -> torch.dtype:
    if spec.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, spec.dtype)


def attention_choice(spec: ModelSpec, device: torch.device) -> AttentionChoice:
    """The backend for ``spec`` on ``device`` and why."""
    impl = spec.attn_implementation
    if impl == "auto":
        return choose_auto(device)
    if impl not in ALL_ATTENTION:
        raise ValueError(f"model.attn_implementation={impl!r}; choose one of auto, {', '.join(ALL_ATTENTION)}")
    if device.type != "cuda" and impl not in CPU_ATTENTION:
        raise ValueError(f"model.attn_implementation={impl!r} does not train on CPU; use sdpa or eager")
    return AttentionChoice(impl, "set by model.attn_implementation")


def build_model(
    spec: ModelSpec, device: torch.device, seed: int = 0, config: PretrainedConfig | None = None
) -> PreTrainedModel:
    """The model on ``device``; random weights are drawn from ``seed`` so a resumed run rebuilds the same base.

    ``config``: random weights of that architecture whatever ``spec`` names (the caller loads the weights
    itself, e.g. from a sharded training checkpoint that keeps the config beside its tensors)."""
    dtype = resolve_dtype(spec, device)
    attn = attention_choice(spec, device).impl
    if spec.path and config is None:
        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn}
        if spec.load_in_4bit:
            kwargs["quantization_config"] = _bnb_4bit_config(device)
            kwargs["device_map"] = {"": device.index or 0}
        model = hub.load_model(spec.path, **kwargs)
    else:
        if spec.load_in_4bit:
            raise ValueError("model.load_in_4bit needs pretrained weights (model.path)")
        config = config if config is not None else load_model_config(spec)
        config._attn_implementation = attn
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = hub.model_from_config(config, None, spec.describe(), dtype=dtype, attn_implementation=attn)
    if not spec.load_in_4bit:
        model.to(device)
    model.config.use_cache = False  # see yue_train.training.forward: a KV cache breaks packed isolation
    return model


def _bnb_4bit_config(device: torch.device) -> Any:
    """QLoRA base: NF4 weights, bf16 compute, double quantisation (bitsandbytes; GPU only, untested here)."""
    if device.type != "cuda":
        raise ValueError("model.load_in_4bit needs a CUDA device (bitsandbytes)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("model.load_in_4bit needs bitsandbytes (pip install 'yue-train[gpu]')")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def llama_module_names(config: PretrainedConfig) -> set[str]:
    """Names (last path component) of every leaf module, from a weightless build on the meta device."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if name and not list(mod.children())}


def enable_activation_checkpointing(model: PreTrainedModel) -> None:
    """Recompute decoder layers in backward (non-reentrant: works with frozen inputs, i.e. LoRA)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
