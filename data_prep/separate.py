"""Optional vocal separation for songs that come without stems, behind the ``demucs`` extra.

Off by default: separation is slow and its quality bounds the training data's, so a user asks for it
(``--separate demucs``) knowing that. Asking for it without demucs installed is an error before any work.

``--separation-model`` names the demucs model: a pretrained name (``htdemucs``, fetched by demucs itself on
first use) or a local folder holding ``demucs.json`` (``{"class": "HTDemucs", "kwargs": {...}}``) and
``model.safetensors``. The folder form is read without unpickling: demucs's own ``.th`` files are pickles
of the model class and its arguments, which this project never loads from disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.errors import first_line
from yue_train.format.provenance import file_fingerprint

METHODS = ("off", "demucs")
DEFAULT_MODEL = "htdemucs"
INSTALL_HINT = "pip install demucs  (the 'separation' extra of yue-train)"
MODEL_CONFIG = "demucs.json"
MODEL_WEIGHTS = "model.safetensors"
# demucs model classes a local folder may name (module, class); their arguments are JSON numbers and lists.
FOLDER_CLASSES = {"HTDemucs": "demucs.htdemucs", "HDemucs": "demucs.hdemucs", "Demucs": "demucs.demucs"}


class SeparationUnavailable(RuntimeError):
    """Separation was asked for but cannot run here."""


def check_available(method: str) -> None:
    """Raise :class:`SeparationUnavailable` if ``method`` cannot run; "off" always can."""
    if method not in METHODS:
        raise SeparationUnavailable(f"unknown separation method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "demucs":
        try:
            import demucs.apply  # noqa: F401
            import demucs.pretrained  # noqa: F401
        except ImportError as e:
            raise SeparationUnavailable(f"--separate demucs: demucs is not installed ({e}); {INSTALL_HINT}") from None


def model_identity(model: str) -> str:
    """What the separation cache keys on: a name as given; a local folder by the hash of its two files."""
    folder = Path(model)
    if not folder.is_dir():
        return model
    h = hashlib.sha256()
    for name in (MODEL_CONFIG, MODEL_WEIGHTS):
        try:
            file_fingerprint(folder / name, h)
        except OSError as e:
            raise SeparationUnavailable(
                f"--separation-model {model}: cannot read {name} ({e.strerror or type(e).__name__}); a local demucs "
                f"model folder holds {MODEL_CONFIG} and {MODEL_WEIGHTS}"
            ) from None
    return f"folder:{h.hexdigest()}"


def weights_unavailable(model_name: str, error: BaseException) -> str:
    """One line naming the demucs weights that could not be loaded, where demucs keeps them and how to get them."""
    from torch.hub import get_dir

    return (
        f"demucs weights {model_name!r} cannot be loaded ({first_line(error)[:160]}); demucs downloads them on first "
        f"use from dl.fbaipublicfiles.com into the torch hub cache ({Path(get_dir()) / 'checkpoints'}): run "
        f"`python -c \"from demucs.pretrained import get_model; get_model('{model_name}')\"` once with network (or "
        f"copy that folder from a machine that has it), or pass --separation-model a folder with {MODEL_CONFIG} and "
        f"{MODEL_WEIGHTS}, or give the songs vocals.* and instrumental.* stems"
    )


def separation_cache(model: str, device: str, identity: str | None = None) -> Any:
    """The content-keyed cache in front of a :class:`DemucsSeparator` made on its first miss; ``identity``:
    :func:`model_identity` of ``model`` when the caller has it already (it hashes a local model's weights)."""
    from yue_train.data.separation_cache import SeparationCache, default_folder

    key = identity or model_identity(model)
    return SeparationCache(default_folder(), key, lambda: DemucsSeparator(model, device))


def load_model_folder(folder: Path) -> Any:
    """A demucs model from ``demucs.json`` + ``model.safetensors``: the class from :data:`FOLDER_CLASSES`,
    built on the meta device first so that arguments asking for more parameters than the weights file holds
    are refused before anything is allocated."""
    import importlib

    import torch
    from safetensors.torch import load_file

    from yue_train.format.bounded_json import JsonFileError, read_json_object

    where = f"--separation-model {folder}"
    try:
        config = read_json_object(folder / MODEL_CONFIG, where)
    except JsonFileError as e:
        raise SeparationUnavailable(str(e)) from None
    klass, kwargs = config.get("class"), config.get("kwargs", {})
    if klass not in FOLDER_CLASSES or not isinstance(kwargs, dict):
        raise SeparationUnavailable(
            f"{where}: {MODEL_CONFIG} must name a class among {', '.join(FOLDER_CLASSES)} and give its kwargs "
            f"as an object, not {klass!r}"
        )
    weights = folder / MODEL_WEIGHTS
    if not weights.is_file():
        raise SeparationUnavailable(f"{where}: {MODEL_WEIGHTS} is missing beside {MODEL_CONFIG}")
    cls = getattr(importlib.import_module(FOLDER_CLASSES[klass]), klass)
    try:
        with torch.device("meta"):
            shape_only = cls(**kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as e:
        raise SeparationUnavailable(f"{where}: {klass} refuses the kwargs in {MODEL_CONFIG} ({e})") from None
    state_bytes = sum(t.numel() * t.element_size() for t in shape_only.state_dict().values())
    if state_bytes > weights.stat().st_size:
        raise SeparationUnavailable(
            f"{where}: the kwargs in {MODEL_CONFIG} make a model of {state_bytes:,} bytes, more than "
            f"{MODEL_WEIGHTS} holds ({weights.stat().st_size:,})"
        )
    model = cls(**kwargs)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as e:  # safetensors' header errors and load_state_dict's key/shape mismatches
        raise SeparationUnavailable(
            f"{where}: {MODEL_WEIGHTS} does not fit {klass}({MODEL_CONFIG}): {first_line(e)[:200]}"
        ) from None
    return model


class DemucsSeparator:
    """mix file -> (vocals, accompaniment) mono at ``sample_rate``, with a demucs model.

    A pretrained model's weights are fetched by demucs itself on first use (its own cache), not by yue-train;
    a local folder is read by :func:`load_model_folder`. Callers wrap it in
    :class:`yue_train.data.separation_cache.SeparationCache` (:func:`separation_cache`): each mix is separated
    once.
    """

    def __init__(
        self, model_name: str = DEFAULT_MODEL, device: str = "cpu", get_model: Callable[[str], Any] | None = None
    ) -> None:
        """``get_model``: name -> pretrained demucs model (default: demucs's own, which downloads on first use)."""
        if get_model is None:
            check_available("demucs")
        folder = Path(model_name)
        model = load_model_folder(folder) if folder.is_dir() else self._pretrained(model_name, get_model)
        self.model = model.eval().to(device)
        self.device = device

    @staticmethod
    def _pretrained(model_name: str, get_model: Callable[[str], Any] | None = None) -> Any:
        if get_model is None:
            from demucs.pretrained import get_model

        try:
            return get_model(model_name)
        except Exception as e:  # demucs raises URLError, HTTPError or its own errors when the download fails
            raise SeparationUnavailable(weights_unavailable(model_name, e)) from None

    def separate(self, path: str, sample_rate: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
        import soxr
        import torch
        from demucs.apply import apply_model

        from yue_train.codec.audio_io import MAX_SONG_SECONDS, load_audio

        sr = int(self.model.samplerate)
        mono = load_audio(path, sr, max_seconds=MAX_SONG_SECONDS)
        # demucs models take stereo; a mono file is the same signal on both channels.
        wav = torch.from_numpy(np.stack([mono, mono]))[None].to(self.device)
        ref = wav.mean(1, keepdim=True)
        mean, std = ref.mean(), ref.std().clamp_min(1e-8)
        with torch.inference_mode():
            sources = apply_model(self.model, (wav - mean) / std, device=self.device)[0] * std + mean
        names = list(self.model.sources)
        vocals = sources[names.index("vocals")].mean(0).cpu().numpy()
        inst = sum(sources[i] for i, n in enumerate(names) if n != "vocals").mean(0).cpu().numpy()
        return (
            soxr.resample(vocals, sr, sample_rate).astype(np.float32),
            soxr.resample(inst, sr, sample_rate).astype(np.float32),
        )
