"""CLAP metrics (transformers ``ClapModel``): ``clap`` text–audio agreement and ``fad`` against a reference set.

Both read weights from the ``model`` option: a local folder saved with ``save_pretrained`` or a hub id
found in the local Hugging Face cache (default ``laion/clap-htsat-unfused``; ``laion/larger_clap_music``
is trained on more music). Audio is resampled to the model's rate and cut into consecutive windows of the
feature extractor's length (10 s for the LAION models; a last shorter window is kept when it is at least
1 s or the only one), so a song is scored on all of it, deterministically.

``clap``: cosine similarity between the text embedding of the song's genre tags (``text`` option, a
template with ``{genres}``) and the mean of the song's normalised window embeddings. Trust it to rank
songs or runs on *the same* tag set: absolute values depend on the model and on how the tags are worded.

``fad``: the Fréchet distance between Gaussians fitted to the window embeddings (CLAP's projected audio
embeddings) of the generated set and of the reference set. Lower is closer. With few songs the
covariances are estimated from few windows and FAD is biased upwards, so compare FADs computed with the
same number of songs and seconds; it says whether the set *sounds like* the reference set, not whether
any one song is good.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from yue_train.evaluation.metrics import register
from yue_train.evaluation.metrics.audio import resample
from yue_train.evaluation.metrics.base import MetricError, MetricResult, SetMetric, SongAudio, SongMetric
from yue_train.evaluation.metrics.frechet import frechet_between
from yue_train.evaluation.metrics.weights import load_weights

DEFAULT_MODEL = "laion/clap-htsat-unfused"


@cache
def clap_embedder(model: str | None, download: bool = False) -> ClapEmbedder:
    """One CLAP model per weights in a process: clap and fad load it once."""
    return ClapEmbedder(model, download)


class ClapEmbedder:
    """A ClapModel and its processor on CPU, embedding audio windows and texts."""

    def __init__(self, model: str | None, download: bool = False) -> None:
        import torch
        from transformers import ClapModel, ClapProcessor

        def load(source: str, local_only: bool) -> tuple[Any, Any]:
            from yue_train.models import hub  # imports transformers: only when weights load

            net = hub.from_pretrained(ClapModel, source, "model", local_files_only=local_only)
            processor = hub.from_pretrained(ClapProcessor, source, "config", local_files_only=local_only)
            return net, processor

        self.model, self.processor = load_weights("CLAP weights", model, DEFAULT_MODEL, load, download)
        self.model.eval()
        self._torch = torch
        extractor = self.processor.feature_extractor
        self.rate = int(extractor.sampling_rate)
        self.window = int(extractor.nb_max_samples)
        # windows never exceed the extractor's length, so "rand_trunc" never crops (nothing random)
        self.truncation = "fusion" if self.model.config.audio_config.enable_fusion else "rand_trunc"

    def windows(self, wave: np.ndarray, sample_rate: int) -> list[np.ndarray]:
        x = resample(wave, sample_rate, self.rate)
        cuts = [x[i : i + self.window] for i in range(0, len(x), self.window)]
        return [c for i, c in enumerate(cuts) if i == 0 or len(c) >= self.rate]

    def audio(self, wave: np.ndarray, sample_rate: int, batch: int = 8) -> np.ndarray:
        """(n_windows, d) projected audio embeddings of ``wave``."""
        pieces = self.windows(wave, sample_rate)
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(pieces), batch):
                feats = self.processor.feature_extractor(
                    pieces[i : i + batch], sampling_rate=self.rate, truncation=self.truncation, return_tensors="pt"
                )
                emb = self.model.get_audio_features(**feats)
                out.append(_tensor(emb).float().numpy())
        return np.concatenate(out, axis=0)

    def text(self, text: str) -> np.ndarray:
        with self._torch.inference_mode():
            tokens = self.processor.tokenizer([text], padding=True, return_tensors="pt")
            return _tensor(self.model.get_text_features(**tokens)).float().numpy()[0]


def _tensor(output: Any) -> Any:
    """get_*_features return a tensor, or in newer transformers an output whose pooler_output is it."""
    return output if hasattr(output, "numpy") else output.pooler_output


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@register("clap")
class ClapScore(SongMetric):
    def __init__(self, model: str | None = DEFAULT_MODEL, text: str = "{genres}", download: bool = False) -> None:
        if "{genres}" not in text:
            raise MetricError(f"clap.text must contain {{genres}} (the song's genre tags), got {text!r}")
        self.template = text
        self.embedder = clap_embedder(model, download)

    def score(self, song: SongAudio) -> MetricResult:
        if not song.genres.strip():
            return MetricResult(values={})
        audio = _unit(_unit(self.embedder.audio(song.mix, song.sample_rate)).mean(axis=0))
        text = _unit(self.embedder.text(self.template.format(genres=song.genres.strip())))
        return MetricResult(values={"score": float(audio @ text)})


@register("fad")
class FrechetAudioDistance(SetMetric):
    needs_reference = True

    def __init__(self, model: str | None = DEFAULT_MODEL, download: bool = False) -> None:
        self.embedder = clap_embedder(model, download)

    def embed_set(self, songs: Sequence[SongAudio]) -> np.ndarray:
        return np.concatenate([self.embedder.audio(s.mix, s.sample_rate) for s in songs], axis=0)

    def score_set(self, songs: Sequence[SongAudio], reference: Sequence[SongAudio] | None) -> dict[str, float]:
        if not reference:
            raise MetricError("fad needs a reference set: give the evaluation a reference folder of songs")
        generated, ref = self.embed_set(songs), self.embed_set(reference)
        if len(generated) < 2 or len(ref) < 2:
            raise MetricError(
                f"fad needs at least 2 audio windows per set (got {len(generated)} generated, {len(ref)} reference); "
                "score more or longer songs"
            )
        return {"fad": frechet_between(generated, ref), "windows": float(len(generated))}
