"""The models generation runs on: a stage-1 LM (optionally with LoRA adapters), a stage-2 LM whose output
layer covers every stage-2 id, and the codec; each on the device :func:`yue_train.devices.resolve_device`
picks."""

from __future__ import annotations

from pathlib import Path

import torch

from yue_train.generation.inputs import STAGE2_MIN_VOCAB, GenerateInputError


def load_lm(path: str, device: torch.device, adapters: list[str] | None = None, active: str | None = None):
    """A causal LM from a folder or hub id (training's loader), with PEFT adapters loaded by name
    (``a0``, ``a1``, ...; switch with ``model.set_adapter``)."""
    from yue_train.models.loading import ModelSpec, build_model

    model = build_model(ModelSpec(path=path), device)
    if adapters:
        from yue_train.models import hub

        model = hub.load_adapter(model, adapters[0], adapter_name="a0")
        for n, adapter in enumerate(adapters[1:], start=1):
            hub.add_adapter(model, adapter, f"a{n}")
        names = {f"a{n}": a for n, a in enumerate(adapters)}
        chosen = active or "a0"
        if chosen not in names:
            chosen = next((k for k, v in names.items() if v == active), None)
            if chosen is None:
                raise GenerateInputError(f"--adapter {active!r} is not one of the loaded adapters {adapters}")
        model.set_adapter(chosen)
    return model.eval()


def load_stage2(path: str, device: torch.device, name: str | None = None) -> torch.nn.Module:
    """The stage-2 model, its output layer checked to cover every stage-2 id (``name``: how messages call it)."""
    s2 = load_lm(path, device)
    vocab_size = s2.get_output_embeddings().weight.shape[0]
    if vocab_size < STAGE2_MIN_VOCAB:
        where = f"stage-2 model {path}" if name is None else f"{name}={path}"
        raise GenerateInputError(f"{where} has {vocab_size} output ids; stage 2 needs {STAGE2_MIN_VOCAB}")
    return s2


def load_codec(folder: str | Path | None, device: torch.device):
    """The converted codec in ``folder`` (with its upsamplers), or None without one."""
    if folder is None:
        return None
    from yue_train.codec.model import YueCodec

    return YueCodec.from_folder(folder, device=device)
