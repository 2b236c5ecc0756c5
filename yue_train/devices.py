"""The one rule that turns a ``--device`` / ``device=`` value into a torch device, for training, generation,
the codec and data preparation alike."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): this process's GPU, ``cuda:LOCAL_RANK`` (``cuda:0`` outside torchrun), when CUDA is
    present, else the CPU. Anything else is a device as torch spells it (``cpu``, ``cuda:1``)."""
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)
