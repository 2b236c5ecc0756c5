"""Optional vocal separation for songs that come without stems, behind the ``demucs`` extra.

Off by default: separation is slow and its quality bounds the training data's, so a user asks for it
(``--separate demucs``) knowing that. Asking for it without demucs installed is an error before any work.
"""

from __future__ import annotations

import numpy as np

METHODS = ("off", "demucs")
DEFAULT_MODEL = "htdemucs"
INSTALL_HINT = "pip install demucs  (the 'separation' extra of yue-train)"


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


class DemucsSeparator:
    """mix file -> (vocals, accompaniment) mono at ``sample_rate``, with a pretrained demucs model.

    The model's weights are fetched by demucs itself on first use (its own cache), not by yue-train. Callers
    wrap it in :class:`yue_train.data.separation_cache.SeparationCache`: each mix is separated once.
    """

    def __init__(self, model_name: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        check_available("demucs")
        from demucs.pretrained import get_model

        try:
            model = get_model(model_name)
        except Exception as e:  # demucs raises URLError, HTTPError or its own errors when the download fails
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SeparationUnavailable(
                f"demucs weights {model_name!r} cannot be loaded ({first[:160]}); demucs downloads them on first use "
                f"from dl.fbaipublicfiles.com into the torch hub cache (~/.cache/torch/hub/checkpoints): run "
                f"`python -c \"from demucs.pretrained import get_model; get_model('{model_name}')\"` once with "
                "network (or copy that folder from a machine that has it), or give the songs vocals.* and "
                "instrumental.* stems"
            ) from None
        self.model = model.eval().to(device)
        self.device = device

    def separate(self, path: str, sample_rate: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
        import soxr
        import torch
        from demucs.apply import apply_model

        from yue_train.codec.audio_io import load_audio

        sr = int(self.model.samplerate)
        mono = load_audio(path, sr)
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
