"""What the trainer trains: the model, LoRA on it, AdamW and the LR schedule.

Where the weights come from, in order: a checkpoint the run resumes (its tensors load after the strategy
wraps the model, so only the module is built here), ``trainer.init_from`` (a Hugging Face folder, or the
sharded state of a full fine-tuning checkpoint read whole here), else ``cfg.model``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yue_train.models.loading import ModelSpec, build_model, enable_activation_checkpointing
from yue_train.models.lora import apply_lora
from yue_train.training import ranks
from yue_train.training.checkpointing import dcp
from yue_train.training.checkpointing import layout as L
from yue_train.training.checkpointing.dcp import is_dcp_checkpoint
from yue_train.training.checkpointing.hf_export import saved_model_config
from yue_train.training.checkpointing.publish import pick_checkpoint
from yue_train.training.checkpointing.state_files import CheckpointFileError
from yue_train.training.output import library_bars_off, note

BASE_MODEL_DIR = "base_model"  # a LoRA run's base when it exists nowhere else as Hugging Face weights


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses)."""


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_init_from(value: Any) -> Path | None:
    """``trainer.init_from``: a run folder (its latest checkpoint), a checkpoint folder, or a Hugging Face
    model folder -> the folder of full model weights a new phase starts from (a DCP checkpoint folder
    when it holds no Hugging Face weights)."""
    if value in (None, "", False):
        return None
    path = Path(str(value))
    if (path / L.CHECKPOINTS).is_dir():
        ckpt, skipped = pick_checkpoint(path)
        if ckpt is None:
            why = f" that verifies ({'; '.join(skipped)})" if skipped else " yet"
            raise TrainingError(f"trainer.init_from={value}: that run has no complete checkpoint{why}")
        if skipped and ranks.is_main():
            note(f"yue-train: trainer.init_from: starting from {ckpt.name}; skipped {'; '.join(skipped)}")
        path = ckpt
    if (path / L.HF_MODEL_DIR / "config.json").exists():
        return path / L.HF_MODEL_DIR
    if (path / "config.json").exists():
        return path
    if is_dcp_checkpoint(path) and not (path / L.MODEL_CONFIG_DIR / "adapter_config.json").exists():
        return path  # sharded state only: its weights load in build_trained_model
    if (path / L.HF_ADAPTER_DIR).is_dir() or is_dcp_checkpoint(path):
        raise TrainingError(
            f"trainer.init_from={value}: a LoRA checkpoint; merge it first with `yue-train export` and start from that"
        )
    if (path / L.DEEPSPEED_DIR / L.DEEPSPEED_TAG).is_dir():
        raise TrainingError(
            f"trainer.init_from={value}: a DeepSpeed checkpoint saved before the end of its phase (no whole weights "
            f"in it); turn it into a model folder with `yue-train export {path} OUT` and start from OUT"
        )
    raise TrainingError(
        f"trainer.init_from={value}: no run, checkpoint or model folder there (run the previous phase first)"
    )


def build_trained_model(
    cfg: Any, spec: ModelSpec, device: torch.device, run_dir: Path, resume: Path | None, init_from: Path | None
) -> torch.nn.Module:
    """The Hugging Face (or, with LoRA, PEFT) model to wrap. Resuming a full fine-tuning run builds the
    module of the checkpoint's ``model_config/``; resuming a LoRA run builds its base as it started."""
    config = None
    if resume is not None:
        config = None if cfg.lora.enabled else saved_model_config(resume)
    elif init_from is not None and is_dcp_checkpoint(init_from):
        config = saved_model_config(init_from)
    elif init_from is not None:
        spec = dataclasses.replace(spec, name=None, path=str(init_from), overrides=None)
    model = build_model(spec, device, seed=int(cfg.trainer.seed), config=config)
    if resume is None and config is not None:
        try:
            dcp.load_module_weights(init_from, model)
        except CheckpointFileError as e:
            raise CheckpointFileError(f"trainer.init_from: {e}") from None
    if spec.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if not cfg.lora.enabled:
        return model
    base = run_dir / BASE_MODEL_DIR
    if not spec.path and ranks.is_main() and not base.exists():
        # A base that exists nowhere else as Hugging Face weights (random init, or the DCP checkpoint
        # of trainer.init_from): keep it so `yue-train export` can merge into it.
        with library_bars_off():
            model.save_pretrained(base)
    model = apply_lora(model, cfg.lora)
    model.peft_config["default"].base_model_name_or_path = spec.path or str(base.resolve())
    return model


def build_optimizer(optim: Any, device: torch.device, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW over the parameters the strategy hands over (its shards under FSDP2); no decay on norms and biases."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": float(optim.weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=float(optim.lr),
        betas=(float(optim.betas[0]), float(optim.betas[1])),
        eps=float(optim.eps),
        fused=device.type == "cuda",
        foreach=None if device.type == "cuda" else True,  # CPU default is a slow per-tensor loop
    )


def lr_lambda(optim: Any, max_steps: int) -> Callable[[int], float]:
    """The LR multiplier of a step: linear warmup, then constant, linear or cosine down to ``min_lr_ratio``."""
    warmup, floor, schedule = int(optim.warmup_steps), float(optim.min_lr_ratio), optim.schedule

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        if schedule == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f
