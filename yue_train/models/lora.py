"""LoRA through PEFT: targets, rank, alpha, dropout from ``cfg.lora``; adapters saved in PEFT format."""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch import nn


def lora_config(cfg: Any) -> LoraConfig:
    return LoraConfig(
        r=int(cfg.r),
        lora_alpha=float(cfg.alpha),
        lora_dropout=float(cfg.dropout),
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lora(model: nn.Module, cfg: Any, quantized: bool = False, gradient_checkpointing: bool = False) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; base weights are frozen by PEFT."""
    if quantized:
        # Casts norms to fp32 and enables input grads, as PEFT's QLoRA path expects (GPU only, untested here).
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},  # as the non-quantised path
        )
    return get_peft_model(model, lora_config(cfg))
