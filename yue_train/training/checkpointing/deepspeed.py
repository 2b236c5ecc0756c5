"""DeepSpeed checkpoint files beyond the engine's own save and load: the universal-checkpoint conversion
that lets a ZeRO run resume under another number of processes, and the fp32 consolidation behind
``yue-train export`` (files: :mod:`.layout`).

Both are DeepSpeed's own tools called in-process (``deepspeed.checkpoint.ds_to_universal``,
``deepspeed.utils.zero_to_fp32``); written here is only where the files go and the checks around them.
Those tools and DeepSpeed's loader read every file with ``torch.load(weights_only=False)``, which runs
whatever a pickle names, so each pickle they will read is scanned first for the globals it names
(:func:`refuse_unsafe_files`, :data:`ALLOWLIST`): the saved ZeRO files and the converted universal files alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import PreTrainedModel

from yue_train.safe_pickle import Allowlist, CheckpointReadError, refused_globals, restricted_torch_load
from yue_train.training.checkpointing.hf_export import ExportError, saved_module
from yue_train.training.checkpointing.layout import DEEPSPEED_DIR, MODEL_CONFIG_DIR, UNIVERSAL_PREFIX
from yue_train.training.checkpointing.layout import DEEPSPEED_TAG as STATE_TAG
from yue_train.training.checkpointing.state_files import CheckpointFileError, refused
from yue_train.training.output import VERBOSE, verbosity

# What DeepSpeed's optimizer files name beyond plain data: its loss scaler, stage enum and the fragment address
# record (DeepSpeed loads its own files; :mod:`.verify` checks these names first).
ALLOWLIST = Allowlist().with_names([
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
])  # fmt: skip
MODULE_PREFIX = "lm."  # the PackedLossModule's name for the Hugging Face / PEFT model inside it


def saved_world_size(state_dir: Path) -> int:
    """How many processes wrote the partitioned optimizer files of ``state_dir`` (one each; 0: none)."""
    return len(list(Path(state_dir).glob("*_optim_states.pt")))


def refuse_unsafe_files(folder: Path) -> None:
    """:class:`CheckpointFileError` naming the first pickle under ``folder`` that names code."""
    for path in sorted(Path(folder).rglob("*.pt")):
        try:
            bad = refused_globals(path, ALLOWLIST)
        except CheckpointReadError as e:
            raise CheckpointFileError(str(e)) from None
        if bad:
            raise refused(path, bad)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DeepSpeed's tools print their progress to stdout (which carries the run's JSON summary) and draw
    tqdm bars: the prints go to stderr under ``--verbose`` and nowhere otherwise, the bars are off."""
    was = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with contextlib.ExitStack() as stack:
            sink = sys.stderr if verbosity() >= VERBOSE else stack.enter_context(open(os.devnull, "w"))
            stack.enter_context(contextlib.redirect_stdout(sink))
            yield
    finally:
        if was is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = was


def universal_folder(checkpoint: Path) -> Path:
    """Where the universal form of ``checkpoints/step-N`` is written: ``checkpoints/.universal-step-N``."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent / f"{UNIVERSAL_PREFIX}{checkpoint.name}"


def convert_to_universal(checkpoint: Path) -> tuple[Path, str]:
    """Convert the ZeRO files of ``checkpoint`` into a universal checkpoint (DeepSpeed's ds_to_universal);
    returns (load folder, tag) for ``engine.load_checkpoint``. Run by one process; a leftover folder of an
    earlier conversion is replaced, never trusted."""
    from deepspeed.checkpoint import ds_to_universal

    source = Path(checkpoint) / DEEPSPEED_DIR / STATE_TAG
    refuse_unsafe_files(source)
    root = universal_folder(checkpoint)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tag = f"{STATE_TAG}_universal"
    args = argparse.Namespace(
        input_folder=str(source), output_folder=str(root / tag), num_extract_workers=1, num_merge_workers=1,
        keep_temp_folder=False, strict=True, inject_missing_state=True,
    )  # fmt: skip
    with _quiet():
        ds_to_universal.main(args)
    refuse_unsafe_files(root)
    return root, tag


def repair_zero3_universal_load(optimizer: torch.optim.Optimizer, root: Path, tag: str) -> None:
    """Undo two things DeepSpeed's ZeRO-3 universal loader (``load_hp_checkpoint_state_from_checkpoint_dir_stage3``)
    does to an optimizer with more than one parameter group:

    - it copies the first group's hyperparameters into every group; ours differ (no weight decay on norms
      and biases), so each group's own saved values are put back;
    - it gives every group's state the same ``step`` tensor object, and torch's AdamW adds 1 to it in
      place once per group, so the step count would run ahead; each state gets its own copy.
    """
    path = Path(root) / tag / "zero" / "optimizer_state.pt"
    saved = restricted_torch_load(path, ALLOWLIST)["param_groups"]
    if len(saved) != len(optimizer.param_groups):
        raise CheckpointFileError(
            f"{path}: {len(saved)} parameter groups, the optimizer has {len(optimizer.param_groups)}"
        )
    for group, values in zip(optimizer.param_groups, saved, strict=True):
        group.update({k: v for k, v in values.items() if k != "params"})
    for state in optimizer.state.values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].clone()


def save_model_config(lm: torch.nn.Module, out: Path) -> None:
    """``config.json`` (+ ``generation_config.json``) of a full model, or ``adapter_config.json`` of a
    PEFT model: what an export needs to rebuild the model around consolidated weights."""
    peft_config = getattr(lm, "peft_config", None)
    if peft_config is not None:
        peft_config["default"].save_pretrained(str(out))
        return
    model = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    model.config.save_pretrained(str(out))  # type: ignore[union-attr,operator]
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(out))  # type: ignore[union-attr,operator]


def consolidated_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The fp32 weights of a DeepSpeed checkpoint's trainable parameters, whole, named as in the Hugging
    Face / PEFT model (DeepSpeed's zero_to_fp32 merges the per-process partitions)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    root = Path(checkpoint) / DEEPSPEED_DIR
    refuse_unsafe_files(root / STATE_TAG)
    with _quiet():
        state = get_fp32_state_dict_from_zero_checkpoint(str(root), tag=STATE_TAG, exclude_frozen_parameters=True)
    return {k.removeprefix(MODULE_PREFIX): v for k, v in state.items()}


def deepspeed_model(checkpoint: Path, base: str | None, dtype: torch.dtype) -> PreTrainedModel | None:
    """``yue-train export``'s source for a DeepSpeed checkpoint without whole weights: the plain model (LoRA
    merged into its base), or None when ``checkpoint`` holds no DeepSpeed state."""
    if not (Path(checkpoint) / DEEPSPEED_DIR / STATE_TAG).is_dir():
        return None
    try:
        weights = consolidated_weights(checkpoint)
        model, lora = saved_module(Path(checkpoint) / MODEL_CONFIG_DIR, base, dtype)
    except CheckpointFileError as e:
        raise ExportError(str(e)) from None
    names = {n for n, _ in model.named_parameters()}
    unknown = sorted(set(weights) - names)
    missing = sorted({n for n, p in model.named_parameters() if p.requires_grad} - set(weights))
    if unknown or missing:  # every name the model's, every trainable parameter given
        what = f"names {unknown[0]} the model does not have" if unknown else f"lacks {missing[0]}"
        raise ExportError(f"{checkpoint}: the DeepSpeed state {what}; it was written for another model")
    model.load_state_dict(weights, strict=False)
    model.tie_weights()
    return model.merge_and_unload() if lora else model
