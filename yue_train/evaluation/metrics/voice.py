"""``voice_similarity``: how close the sung voice is to a target voice — the metric of a voice LoRA.

Speaker embeddings come from Resemblyzer's voice encoder (a 3-layer LSTM d-vector model trained for
speaker verification on speech; its weights ship inside the pip package, nothing is downloaded). The
vocal stem (the mix when a song has no stems) and the target recording(s) are resampled to 16 kHz,
volume-normalised and trimmed of long silences by Resemblyzer's own preprocessing, embedded, and scored
by cosine similarity (the embeddings are non-negative and L2-normed, so the score lies in [0, 1]).

When to trust it: as a *relative* number — the same songs scored against the target before and after
fine-tuning, or against the target vs another singer. The encoder was trained on speech; on singing the
absolute values run lower and higher pitch alone moves them, so compare runs at similar melodies.
A song whose vocal has under half a second of sound after trimming scores 0.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.evaluation.metrics import register
from yue_train.evaluation.metrics.audio import resample, vocal_or_mix
from yue_train.evaluation.metrics.base import MetricError, MetricResult, SongAudio, SongMetric

RATE = 16000
MIN_SECONDS = 0.5


def _import_resemblyzer() -> Any:
    try:
        with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import resemblyzer
    except ImportError as exc:
        raise MetricError(
            f"voice_similarity needs Resemblyzer ({exc}); install the eval extra: pip install 'yue-train[eval]'"
        ) from exc
    return resemblyzer


def read_wave(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples of an audio file at 16 kHz (read in blocks; at most ``MAX_SONG_SECONDS``), and
    that rate."""
    from yue_train.codec.audio_io import MAX_SONG_SECONDS, AudioError, load_audio  # soundfile: when a target is read

    try:
        return load_audio(path, RATE, allow_silent=True, max_seconds=MAX_SONG_SECONDS), RATE
    except AudioError as exc:
        raise MetricError(f"cannot read audio file {exc}".replace("\n", " ")) from None


@register("voice_similarity")
class VoiceSimilarity(SongMetric):
    def __init__(self, target: str | list[str] | None = None) -> None:
        paths = [target] if isinstance(target, str) else list(target or [])
        if not paths:
            raise MetricError(
                "voice_similarity needs a target voice: set its option target to a wav file of the voice (or a list of files)"
            )
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise MetricError(f"voice_similarity target voice file not found: {missing[0]}; give an existing wav file")
        resemblyzer = _import_resemblyzer()
        self._preprocess = resemblyzer.preprocess_wav
        self.encoder = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
        embeds = []
        for p in paths:
            wave = self._prepared(*read_wave(Path(p)))
            if wave is None:
                raise MetricError(
                    f"voice_similarity target {p} has under {MIN_SECONDS} s of sound; give a recording of the voice"
                )
            embeds.append(self.encoder.embed_utterance(wave))
        mean = np.mean(embeds, axis=0)
        self.target = mean / np.linalg.norm(mean)

    def _prepared(self, wave: np.ndarray, sample_rate: int) -> np.ndarray | None:
        if not np.any(np.abs(wave) > 1e-4):  # digital silence: nothing to normalise or embed
            return None
        wave = self._preprocess(resample(wave, sample_rate, RATE))
        return wave if len(wave) >= MIN_SECONDS * RATE else None

    def embed(self, wave: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """The L2-normed speaker embedding of a recording, or None when it is (nearly) silent."""
        prepared = self._prepared(wave, sample_rate)
        return None if prepared is None else self.encoder.embed_utterance(prepared)

    def score(self, song: SongAudio) -> MetricResult:
        wave, _ = vocal_or_mix(song)
        embedding = self.embed(wave, song.sample_rate)
        similarity = 0.0 if embedding is None else float(np.dot(embedding, self.target))
        return MetricResult(values={"similarity": similarity})
