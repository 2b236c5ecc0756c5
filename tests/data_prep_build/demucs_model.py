"""A random-weight demucs model saved as a local separation-model folder, for the separation tests.

demucs 4 imports ``openunmix.filtering`` (plain torch); importing the ``openunmix`` package runs its
``__init__``, which imports torchaudio, and torchaudio cannot be installed beside the CPU torch wheel that the
tests use. :func:`demucs_importable` therefore registers ``openunmix`` as a bare package over its installed
folder, so that its submodules import without that ``__init__``; every line of demucs that separation runs is
the installed library's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

# HTDemucs at 16 kHz with narrow layers: ~90k parameters, a few seconds of audio separate in about a second.
TINY_HTDEMUCS = {
    "sources": ["drums", "bass", "other", "vocals"],
    "audio_channels": 2,
    "samplerate": 16000,
    "segment": 2,
    "channels": 16,
    "growth": 2,
    "depth": 2,
    "nfft": 512,
    "t_layers": 1,
    "t_heads": 2,
    "bottom_channels": 0,
}


def register_openunmix_without_init() -> bool:
    """Register ``openunmix`` as a bare package over its installed folder (no import of torch or demucs, so
    it is cheap enough for a ``sitecustomize``); False when openunmix is not installed."""
    if "openunmix" in sys.modules:
        return True
    spec = importlib.util.find_spec("openunmix")
    if spec is None:
        return False
    package = types.ModuleType("openunmix")
    package.__path__ = list(spec.submodule_search_locations or [])
    package.__spec__ = spec
    sys.modules["openunmix"] = package
    return True


def demucs_importable() -> bool:
    """True when demucs can be imported here (with ``openunmix`` registered as described above)."""
    if importlib.util.find_spec("demucs") is None or not register_openunmix_without_init():
        return False
    try:
        import demucs.apply  # noqa: F401
        import demucs.pretrained  # noqa: F401
    except ImportError:
        return False
    return True


def save_random_demucs(folder: Path, seed: int = 0, **overrides: object) -> Path:
    """A random HTDemucs as ``demucs.json`` + ``model.safetensors`` in ``folder``. Its stems are noise-like
    and about as loud as the mix, so the tiny codec gives them varied codes (stage-2 documents need 25 distinct
    codebook-0 codes in a 6-second chunk)."""
    import torch
    from demucs.htdemucs import HTDemucs
    from safetensors.torch import save_file

    kwargs = {**TINY_HTDEMUCS, **overrides}
    torch.manual_seed(seed)
    model = HTDemucs(**kwargs)
    with torch.no_grad():  # twice demucs's initial scale: stems as loud as the mix, not ~20 dB below it
        for weight in model.parameters():
            if weight.dim() > 1:
                weight.mul_(2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demucs.json").write_text(json.dumps({"class": "HTDemucs", "kwargs": kwargs}), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder
