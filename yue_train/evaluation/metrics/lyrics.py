"""``lyrics_wer`` and ``lyrics_per``: how intelligibly the requested lyrics are sung — word and character error rates of an
ASR transcript of the vocal stem (transformers Whisper) against the lyrics the song was generated from.

Weights: the ``model`` option, a local folder saved with ``save_pretrained`` or a hub id found in the
local Hugging Face cache (default ``openai/whisper-small``). The vocal stem (the mix when a song has no
stems) is resampled to 16 kHz and transcribed in consecutive 30 s windows (Whisper's input length),
greedy decoding; ``language`` forces the language (else Whisper detects it per window).

Scoring: both texts are normalised — section labels such as ``[verse]`` and bracketed/parenthesised
asides dropped, lower-cased, punctuation other than apostrophes removed, whitespace collapsed — then
``wer`` = word-level Levenshtein distance (substitutions + deletions + insertions) / reference words and
``cer`` = the same over characters with spaces removed (the number to read for languages written
without spaces, e.g. Chinese or Japanese lyrics, where ``wer`` counts whole lines as words). Both can
exceed 1 when the transcript is longer than the lyrics. ``lyrics_per`` is the phoneme error rate: the
same distance over :func:`yue_train.evaluation.metrics.phonemes.phonemes` (CMU phones for English, pinyin
initials and toned finals for Mandarin, characters elsewhere); it is the figure independent benchmarks report
for YuE. A song without lyrics gets no values. Both metrics share one Whisper model per process.

When to trust it: singing is hard for ASR even when a human understands every word; Whisper's error on
clean human singing is already far from 0, so use it to compare runs and checkpoints, not as an absolute
intelligibility score. Words cut at a 30 s window boundary count as errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import numpy as np

from yue_train.evaluation.metrics import register
from yue_train.evaluation.metrics.audio import resample, vocal_or_mix
from yue_train.evaluation.metrics.base import MetricResult, SongAudio, SongMetric
from yue_train.evaluation.metrics.weights import load_weights

DEFAULT_MODEL = "openai/whisper-small"
RATE = 16000
WINDOW_SECONDS = 30

_SECTION = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_PUNCT = re.compile(r"[^\w\s']|_")


def normalize_text(text: str) -> str:
    text = _SECTION.sub(" ", text).lower()
    text = _PUNCT.sub(" ", text)
    return " ".join(text.split())


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning ``ref`` into ``hyp``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(reference: str, hypothesis: str) -> dict[str, float]:
    """``wer`` and ``cer`` of ``hypothesis`` against ``reference`` after :func:`normalize_text`; {} when the
    normalised reference is empty."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return {}
    ref_chars, hyp_chars = ref.replace(" ", ""), hyp.replace(" ", "")
    return {
        "wer": edit_distance(ref.split(), hyp.split()) / len(ref.split()),
        "cer": edit_distance(ref_chars, hyp_chars) / len(ref_chars),
    }


def phoneme_error_rate(reference: str, hypothesis: str) -> dict[str, float]:
    """``per`` of ``hypothesis`` against ``reference`` after :func:`normalize_text`; {} for empty lyrics."""
    from yue_train.evaluation.metrics.phonemes import phonemes

    ref = phonemes(normalize_text(reference))
    if not ref:
        return {}
    return {"per": edit_distance(ref, phonemes(normalize_text(hypothesis))) / len(ref)}


@cache
def whisper_transcriber(
    model: str | None,
    language: str | None = None,
    download: bool = False,
    device: str = "cpu",
    option: str = "the metric's option model",
) -> WhisperTranscriber:
    """One transcriber per (weights, language, device) in a process: lyrics_wer and lyrics_per load Whisper once.
    ``option``: where the user gives the weights, for the message when they cannot be loaded."""
    return WhisperTranscriber(model, language, download, device, option)


class WhisperTranscriber:
    """Whisper through transformers, loaded through :mod:`yue_train.models.hub`. ``transcribe`` gives the text of a
    vocal (the metrics); ``segments`` gives it as timed segments from Whisper's timestamp tokens (``yue-prep
    --transcribe``, for songs without lyrics)."""

    def __init__(
        self,
        model: str | None,
        language: str | None = None,
        download: bool = False,
        device: str = "cpu",
        option: str = "the metric's option model",
    ) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        def load(source: str, local_only: bool) -> tuple[Any, Any]:
            from yue_train.models import hub  # imports transformers: only when weights load

            net = hub.from_pretrained(WhisperForConditionalGeneration, source, "model", local_files_only=local_only)
            return net, hub.from_pretrained(WhisperProcessor, source, "config", local_files_only=local_only)

        self.model, self.processor = load_weights("Whisper weights", model, DEFAULT_MODEL, load, download, option)
        self.model.eval().to(device)
        self.device = device
        self.language = language
        self._torch = torch

    def _windows(self, wave: np.ndarray, sample_rate: int) -> Iterator[tuple[float, int, Any]]:
        """(start in seconds, samples, input features) of each 30 s window of ``wave`` at 16 kHz."""
        x = resample(wave, sample_rate, RATE)
        step = WINDOW_SECONDS * RATE
        for start in range(0, max(len(x), 1), step):
            piece = x[start : start + step]
            if len(piece) < RATE // 2 and start > 0:
                break
            feats = self.processor.feature_extractor(piece, sampling_rate=RATE, return_tensors="pt").input_features
            yield start / RATE, len(piece), feats.to(self.device)

    def _generate(self, feats: Any, max_new_tokens: int, **extra: Any) -> Any:
        # the decoder holds max_target_positions tokens, the start/language/task prompt included
        limit = int(self.model.config.max_target_positions) - 4
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, min(max_new_tokens, limit)), **extra}
        if self.language:
            kwargs.update(language=self.language, task="transcribe")
        with self._torch.inference_mode():
            return self.model.generate(feats, **kwargs)

    def transcribe(self, wave: np.ndarray, sample_rate: int, max_new_tokens: int = 200) -> str:
        texts = []
        for _, _, feats in self._windows(wave, sample_rate):
            ids = self._generate(feats, max_new_tokens)
            texts.append(self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip())
        return " ".join(t for t in texts if t)

    def segments(self, wave: np.ndarray, sample_rate: int, max_new_tokens: int = 440) -> list[tuple[float, float, str]]:
        """(start s, end s, text) of each segment Whisper's timestamp tokens delimit, in song time; each window's
        segments are clipped to the window (a model may predict times past the audio it was given)."""
        out = []
        for offset, n_samples, feats in self._windows(wave, sample_rate):
            length = n_samples / RATE
            result = self._generate(feats, max_new_tokens, return_timestamps=True, return_segments=True)
            for seg in result["segments"][0]:
                start, end = float(seg["start"]), float(seg["end"])
                text = self.processor.tokenizer.decode(seg["tokens"], skip_special_tokens=True).strip()
                if text and start < length:
                    out.append((offset + start, offset + min(end, length), text))
        return out


@register("lyrics_wer")
class LyricsErrorRate(SongMetric):
    def __init__(
        self,
        model: str | None = DEFAULT_MODEL,
        language: str | None = None,
        download: bool = False,
        max_new_tokens: int = 200,
    ) -> None:
        self.max_new_tokens = int(max_new_tokens)
        self.asr = whisper_transcriber(model, language, download)

    def rates(self, reference: str, transcript: str) -> dict[str, float]:
        return error_rates(reference, transcript)

    def score(self, song: SongAudio) -> MetricResult:
        if not normalize_text(song.lyrics):
            return MetricResult(values={})
        wave, _ = vocal_or_mix(song)
        transcript = self.asr.transcribe(wave, song.sample_rate, self.max_new_tokens)
        return MetricResult(values=self.rates(song.lyrics, transcript), artifacts={"transcript": transcript})


@register("lyrics_per")
class LyricsPhonemeErrorRate(LyricsErrorRate):
    def rates(self, reference: str, transcript: str) -> dict[str, float]:
        return phoneme_error_rate(reference, transcript)
