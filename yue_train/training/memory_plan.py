"""The configured run's estimated GPU memory, and ``model.gradient_checkpointing: auto``.

``auto`` checkpoints only when one step would not fit without it: on a CUDA device it estimates the step
without checkpointing (:mod:`.memory_estimate`) and turns checkpointing off when that estimate, plus 10 %
for the caching allocator and 0.5 GiB for the CUDA context, fits the device's memory. Recomputing the
layers costs about a third of the step's compute, so memory that is there is traded for speed.
On CPU ``auto`` means no checkpointing: the estimate is of GPU memory, and CPU runs are the tiny models.
Sharded strategies (FSDP2, DeepSpeed) hold part of each tensor per process, which the single-process
estimate does not model: ``auto`` checkpoints there, as the released recipes do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf
from transformers import PretrainedConfig

from yue_train.config.schema import LoraConfig
from yue_train.training.loss import LossSettings
from yue_train.training.memory_estimate import GIB, Estimate, StepSpec, measure_step
from yue_train.training.validate import ConfigError

ALLOCATOR_SLACK = 1.10
CUDA_CONTEXT_BYTES = GIB // 2
UNSHARDED = ("single", "ddp")


@dataclass
class MemoryPlan:
    checkpointing: bool
    lines: list[str] = field(default_factory=list)  # printed at start (the estimate, a warning)


def checkpointing_setting(value: Any) -> bool | str:
    """``model.gradient_checkpointing`` as True, False or "auto"; anything else is a config error."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise ConfigError(f"model.gradient_checkpointing={value!r}; choose auto, true or false")


def fits(estimate_bytes: int, device_bytes: int) -> bool:
    return estimate_bytes * ALLOCATOR_SLACK + CUDA_CONTEXT_BYTES <= device_bytes


def step_spec(cfg: Any, model_config: PretrainedConfig, micro_batch: int, checkpointing: bool) -> StepSpec:
    """The training step ``cfg`` configures, in the estimator's terms."""
    lora = LoraConfig(**OmegaConf.to_container(cfg.lora, resolve=True)) if cfg.lora.enabled else None
    return StepSpec(
        model_config,
        int(cfg.data.seq_len),
        micro_batch=micro_batch,
        lora=lora,
        qlora=bool(cfg.model.load_in_4bit),
        gradient_checkpointing=checkpointing,
        loss=LossSettings.from_config(cfg.trainer.loss),
    )


def plan_memory(
    cfg: Any, model_config: PretrainedConfig, device: torch.device, micro_batch: int, device_bytes: int | None = None
) -> MemoryPlan:
    """Whether to checkpoint, and the lines that say what one step is estimated to take on ``device``.
    ``device_bytes``: the device's memory (default: what CUDA reports; given by tests)."""
    setting = checkpointing_setting(cfg.model.gradient_checkpointing)
    if device.type != "cuda" and device_bytes is None:
        return MemoryPlan(setting is True)
    strategy = str(cfg.distributed.strategy)
    if device_bytes is None:
        device_bytes = torch.cuda.get_device_properties(device).total_memory
    if setting == "auto" and strategy not in UNSHARDED:
        return MemoryPlan(True, [f"memory: {strategy} shards the state; activation checkpointing on (auto)"])
    without: Estimate | None = None
    checkpointing = bool(setting)
    if setting == "auto":
        without = measure_step(step_spec(cfg, model_config, micro_batch, False))
        checkpointing = not fits(without.peak_bytes, device_bytes)
    chosen = without if without is not None and not checkpointing else None
    chosen = chosen or measure_step(step_spec(cfg, model_config, micro_batch, checkpointing))
    how = "with" if checkpointing else "without"
    line = (
        f"memory: one step estimated at {chosen.peak_gib:.1f} GiB of tensors {how} activation checkpointing"
        f" (device: {device_bytes / GIB:.1f} GiB"
    )
    line += f"; auto: {without.peak_gib:.1f} GiB without)" if without is not None and checkpointing else ")"
    lines = [line]
    if not fits(chosen.peak_bytes, device_bytes):
        lines.append(
            f"warning: {chosen.peak_gib:.1f} GiB (+10 % allocator, +0.5 GiB CUDA context) exceeds the device's "
            f"{device_bytes / GIB:.1f} GiB; lower data.seq_len or data.batch_size, or use LoRA / load_in_4bit"
        )
    return MemoryPlan(checkpointing, lines)
