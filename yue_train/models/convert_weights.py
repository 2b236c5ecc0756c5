"""``yue-train convert-weights IN OUT``: a model or adapter folder whose weights are pickle files (``*.bin``,
``*.pt``) -> the same folder with safetensors weights, the only kind yue-train loads (:mod:`.hub`).

The user runs it on a folder they trust: the pickles are read with ``torch.load(weights_only=True)``
(tensors only, no code), and only JSON and text files are copied beside the weights (never ``*.py``)."""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from yue_train.errors import first_line
from yue_train.models.hub import PICKLE_SUFFIXES

COPIED_SUFFIXES = (".json", ".txt", ".model", ".md")
ADAPTER_WEIGHTS = "adapter_model"


def convert(src: Path, out: Path) -> list[Path]:
    """The safetensors files written into ``out`` (a new folder), one per pickle weight file of ``src``.
    Written into a temporary folder beside ``out`` and renamed: a failure leaves no ``out``."""
    pickles = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise ValueError(f"{src}: no pickle weight files ({', '.join(PICKLE_SUFFIXES)}) to convert")
    if out.exists():
        raise ValueError(f"{out}: already exists; give a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = [_convert_file(path, staging) for path in pickles]
        for path in src.iterdir():
            if path.is_file() and path.suffix in COPIED_SUFFIXES and not path.name.endswith(".index.json"):
                shutil.copyfile(path, staging / path.name)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / name for name in names]


def _convert_file(path: Path, folder: Path) -> str:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path}: holds more than tensors (a pickle that could run code); not converted") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a dict of tensors; convert it with the tool that wrote it")
    stem = ADAPTER_WEIGHTS if path.stem == ADAPTER_WEIGHTS else path.stem.replace("pytorch_model", "model")
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(folder / f"{stem}.safetensors"), metadata={"format": "pt"}
    )
    return f"{stem}.safetensors"


def convert_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="yue-train convert-weights", description=__doc__)
    p.add_argument("src", type=Path, help="a model or adapter folder with pickle weights")
    p.add_argument("out", type=Path, help="a new folder for the safetensors copy")
    args = p.parse_args(argv)
    try:
        written = convert(args.src, args.out)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"yue-train convert-weights: error: {first_line(e)}", file=sys.stderr)
        return 2
    print(f"converted {len(written)} file(s) -> {args.out}")
    return 0
