"""``yue-train export`` of a checkpoint that holds only the sharded training state (``dcp/``, see
:mod:`.dcp_state`): read by this one process whatever number of processes wrote it. The full model is built
from ``model_config/config.json`` and its tensors loaded; a LoRA checkpoint's adapter (``model_config/
adapter_config.json`` + the trainable tensors) is put on its base (``--base``, or the base the run recorded:
``model.path`` or the run's ``base_model/`` folder) and merged with PEFT's ``merge_and_unload``. The rest
of the export (cache on, dtype, provenance) is :mod:`yue_train.models.export`'s, which calls
:func:`dcp_model` for a checkpoint without ``model/`` or ``adapter/``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from yue_train.models.export import ExportError
from yue_train.training.dcp_state import MODEL_CONFIG_DIR, is_dcp_checkpoint, load_module_weights, saved_model_config
from yue_train.training.safe_state import CheckpointFileError


def dcp_model(checkpoint: Path, base: str | None, dtype: torch.dtype) -> PreTrainedModel | None:
    """The plain model of a DCP checkpoint folder (LoRA merged into its base), or None when ``checkpoint``
    holds no DCP state."""
    if not is_dcp_checkpoint(checkpoint):
        return None
    try:
        return _model(Path(checkpoint), base, dtype)
    except CheckpointFileError as e:
        raise ExportError(str(e)) from None


def _model(ckpt: Path, base: str | None, dtype: torch.dtype) -> PreTrainedModel:
    model, lora = saved_module(ckpt / MODEL_CONFIG_DIR, base, dtype)
    load_module_weights(ckpt, model, require_all=not lora)
    return model.merge_and_unload() if lora else model


def saved_module(config_dir: Path, base: str | None, dtype: torch.dtype) -> tuple[torch.nn.Module, bool]:
    """The module a checkpoint's tensors belong to, from its ``model_config/`` folder, and whether it is a
    LoRA adapter: the full model (random weights) from ``config.json``, or the adapter (``adapter_config.json``)
    put on its base (``base``, or the one the adapter names), to be loaded and then merged by the caller.
    Shared by the DCP and the DeepSpeed export."""
    adapter_config = config_dir / "adapter_config.json"
    if not adapter_config.is_file():
        return AutoModelForCausalLM.from_config(saved_model_config(config_dir.parent), dtype=dtype), False
    from peft import PeftConfig, get_peft_model

    config = PeftConfig.from_pretrained(str(config_dir))
    base_ref = base or config.base_model_name_or_path
    if not base_ref:
        raise ExportError(f"{adapter_config}: names no base model; pass --base")
    return get_peft_model(AutoModelForCausalLM.from_pretrained(base_ref, dtype=dtype), config), True
