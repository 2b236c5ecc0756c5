"""``yue-train export``: a checkpoint -> a plain Hugging Face model folder the official YuE inference loads.

LoRA checkpoints (``adapter/``) are merged into their base with PEFT's ``merge_and_unload``; full
checkpoints (``model/``) are re-saved. Training turns the KV cache off in the model config, and
``save_pretrained`` copies that into ``generation_config.json``; the export turns it on in both, so
``generate`` (and the official inference script) decode one new token per step.
A checkpoint without either (only the training state) is offered to the formats' sources
(:func:`.dcp.dcp_model`, :func:`.deepspeed.deepspeed_model`), which rebuild the module from ``model_config/``
(:func:`saved_module`). The checkpoint's provenance record (stage, tokenizer, vocabulary, data) is copied beside the model files
as ``yue_provenance.json``: a plain JSON file that loaders ignore and ``yue-infer generate`` checks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from yue_train.format.provenance import read_provenance, write_provenance
from yue_train.models import hub
from yue_train.training.checkpointing.layout import (
    CHECKPOINTS,
    DCP_DIR,
    DEEPSPEED_DIR,
    HF_ADAPTER_DIR,
    HF_MODEL_DIR,
    LATEST,
    MODEL_CONFIG_DIR,
)
from yue_train.training.checkpointing.state_files import CheckpointFileError


class ExportError(ValueError):
    pass


# A checkpoint format this module does not read (e.g. DeepSpeed's partitioned files): given the checkpoint
# folder, the --base and the dtype, its plain model, or None when the folder is not of that format.
Source = Callable[[Path, str | None, torch.dtype], PreTrainedModel | None]


def checkpoint_folder(path: Path) -> Path:
    """``path`` itself, or the latest checkpoint of a run folder."""
    path = Path(path).resolve()
    latest = path / CHECKPOINTS / LATEST
    return latest.resolve() if latest.exists() else path


def _locate(checkpoint: Path) -> tuple[str, Path]:
    checkpoint = checkpoint_folder(checkpoint)
    if (checkpoint / "adapter_config.json").exists():
        return "adapter", checkpoint
    if (checkpoint / HF_ADAPTER_DIR / "adapter_config.json").exists():
        return "adapter", checkpoint / HF_ADAPTER_DIR
    if (checkpoint / HF_MODEL_DIR / "config.json").exists():
        return "model", checkpoint / HF_MODEL_DIR
    if (checkpoint / MODEL_CONFIG_DIR).is_dir():
        raise ExportError(
            f"{checkpoint}: a training checkpoint without Hugging Face weights (only its sharded state); turn it "
            f"into a model folder with `yue-train export {checkpoint} OUT` and use OUT"
        )
    raise ExportError(f"{checkpoint}: not a checkpoint (no adapter/ or model/ inside)")


def stored_bytes(checkpoint: Path) -> int:
    """Bytes of tensor state a checkpoint holds (its DCP or DeepSpeed files): what a config may describe."""
    folders = [Path(checkpoint) / DCP_DIR, Path(checkpoint) / DEEPSPEED_DIR]
    return sum(p.stat().st_size for d in folders if d.is_dir() for p in d.rglob("*") if p.is_file())


def saved_model_config(folder: Path) -> Any:
    """The Hugging Face config a full-model checkpoint's tensors belong to (its ``model_config/``), read
    through the model door and, where the checkpoint holds tensor files, checked to describe no more
    parameters than they hold (before any model is allocated)."""
    path = Path(folder) / MODEL_CONFIG_DIR
    if not (path / "config.json").is_file():
        raise CheckpointFileError(f"{path}: missing config.json (a LoRA checkpoint, or damaged)")
    try:
        config = hub.load_config(path)
        stored = stored_bytes(Path(folder))
        if stored:
            hub.check_weight_bytes(config.to_dict(), stored, str(path / "config.json"))
    except hub.PretrainedRefused as e:
        raise CheckpointFileError(str(e)) from None
    return config


def saved_module(config_dir: Path, base: str | None, dtype: torch.dtype) -> tuple[torch.nn.Module, bool]:
    """The module a checkpoint's tensors belong to, from its ``model_config/`` folder, and whether it is a
    LoRA adapter: the full model (random weights) from ``config.json``, or the adapter (``adapter_config.json``)
    put on its base (``base``, or the one the adapter names), to be loaded and then merged by the caller.
    Every config is read through the model door (:mod:`yue_train.models.hub`) before anything is allocated."""
    adapter_config = config_dir / "adapter_config.json"
    if not adapter_config.is_file():
        config = saved_model_config(config_dir.parent)
        return hub.model_from_config(config, stored_bytes(config_dir.parent), str(config_dir), dtype=dtype), False
    config, base_model = _adapter_base(config_dir, base, dtype)
    return hub.peft_model(base_model, config, str(adapter_config)), True


def _adapter_base(folder: Path, base: str | None, dtype: torch.dtype) -> tuple[Any, PreTrainedModel]:
    """The adapter config of ``folder`` and its base model (``base``, or the one the adapter names); the
    adapter is checked against the base's config before the base's weights load."""
    config = hub.adapter_config(folder)
    base_ref = base or config.base_model_name_or_path
    if not base_ref:
        raise ExportError(f"{folder}: adapter names no base model; pass --base")
    hub.adapter_config(folder, hub.base_width(hub.load_config(base_ref)))
    return config, hub.load_model(base_ref, dtype=dtype)


def merged_model(
    checkpoint: str | Path, base: str | None = None, dtype: torch.dtype = torch.float32, sources: Sequence[Source] = ()
) -> PreTrainedModel:
    """The plain model of a checkpoint: adapter merged into its base, or the full model; a checkpoint
    without either is offered to ``sources`` in turn."""
    try:
        kind, path = _locate(Path(checkpoint))
    except ExportError:
        for source in sources:
            model = source(checkpoint_folder(Path(checkpoint)), base, dtype)
            if model is not None:
                return model
        raise
    if kind == "model":
        return hub.load_model(path, dtype=dtype)
    _, base_model = _adapter_base(path, base, dtype)
    return hub.load_adapter(base_model, path).merge_and_unload()


def check_export_target(out: Path, overwrite: bool) -> None:
    """``out`` is free: absent, an empty folder, or (with ``overwrite``) a folder to replace; never a symlink."""
    if out.is_symlink():
        raise ExportError(f"{out}: is a symlink; give a real folder (the export is not written through links)")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: already exists and is not empty; pass --overwrite to replace it")


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that replaces ``out`` when the block succeeds and is removed when
    it fails (a full disk, an interrupt): the export is whole or absent, never partial."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(
    checkpoint: str | Path, out: str | Path, base: str | None = None, dtype: str = "bfloat16",
    sources: Sequence[Source] = (), overwrite: bool = False,
) -> Path:  # fmt: skip
    out = Path(out)
    check_export_target(out, overwrite)
    # Merge in fp32 (exact sum), then cast once for saving.
    model = merged_model(checkpoint, base, torch.float32, sources)
    model = model.to(getattr(torch, dtype))
    model.config.use_cache = True
    model.generation_config.use_cache = True
    with staged_folder(out) as staging:
        model.save_pretrained(staging)
        prov = read_provenance(checkpoint_folder(Path(checkpoint)))
        if prov is not None:
            prov.extra["exported_from"] = str(Path(checkpoint).resolve())
            write_provenance(staging, prov)
    return out


def export_main(argv: list[str], sources: Sequence[Source] = ()) -> int:
    p = argparse.ArgumentParser(prog="yue-train export", description=__doc__)
    p.add_argument("checkpoint", help="checkpoints/step-N (or checkpoints/latest, or a run folder)")
    p.add_argument("out", help="output folder")
    p.add_argument("--base", default=None, help="base model folder or hub id (default: the adapter's own)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--overwrite", action="store_true", help="replace OUT when it already holds files")
    args = p.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out, args.base, args.dtype, sources, args.overwrite)
    except (ExportError, OSError, ValueError) as e:
        print(f"yue-train: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0
