"""``yue-train export`` of a DeepSpeed checkpoint that holds no whole weights (a save before the end of
its phase): DeepSpeed's zero_to_fp32 merges the per-process partitions (:mod:`.deepspeed_state`, after
the pickle scan) and the model is rebuilt around them from the small config files every save writes
(``model_config/``). Written here is only that rebuild; the rest of the export (LoRA merge, cache
on, dtype, provenance) is :mod:`yue_train.models.export`'s, which calls :func:`deepspeed_model` when a
checkpoint has no ``model/`` or ``adapter/``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel

from yue_train.models.export import ExportError
from yue_train.training.dcp_export import saved_module
from yue_train.training.deepspeed_state import DEEPSPEED_DIR, MODEL_CONFIG_DIR, STATE_TAG, consolidated_weights
from yue_train.training.safe_state import CheckpointFileError


def deepspeed_model(checkpoint: Path, base: str | None, dtype: torch.dtype) -> PreTrainedModel | None:
    """The plain model of a DeepSpeed checkpoint folder (LoRA merged into its base), or None when
    ``checkpoint`` holds no DeepSpeed state."""
    if not (Path(checkpoint) / DEEPSPEED_DIR / STATE_TAG).is_dir():
        return None
    config_dir = Path(checkpoint) / MODEL_CONFIG_DIR
    if not config_dir.is_dir():
        raise ExportError(
            f"{checkpoint}: DeepSpeed state without {MODEL_CONFIG_DIR}/ (written by an older yue-train); export a "
            "checkpoint saved at the end of its phase (it has model/ or adapter/)"
        )
    try:
        weights = consolidated_weights(checkpoint)
    except CheckpointFileError as e:
        raise ExportError(str(e)) from None
    model, lora = saved_module(config_dir, base, dtype)
    _load(model, weights, checkpoint)
    return model.merge_and_unload() if lora else model


def _load(model: torch.nn.Module, weights: dict[str, torch.Tensor], checkpoint: Path) -> None:
    """Load ``weights`` into ``model``: every name must be the model's, and every trainable parameter
    (all of them for a full model, the adapter's for LoRA) must be given."""
    names = {n for n, _ in model.named_parameters()}
    unknown = sorted(set(weights) - names)
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(wanted - set(weights))
    if unknown or missing:
        what = f"names {unknown[0]} the model does not have" if unknown else f"lacks {missing[0]}"
        raise ExportError(f"{checkpoint}: the DeepSpeed state {what}; it was written for another model")
    model.load_state_dict(weights, strict=False)
    model.tie_weights()
