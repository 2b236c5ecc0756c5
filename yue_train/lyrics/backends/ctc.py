"""A transformers ``Wav2Vec2ForCTC`` model as the aligner's acoustic model (the default: an MMS-family
multilingual aligner whose alphabet is romanized Latin letters, so every YuE language goes through uroman).

The model and its tokenizer are read from a local folder or a hub id through :mod:`yue_train.models.hub`
(no custom code, safetensors weights, sizes checked); a hub id is fetched into the Hugging Face cache on
first use (``download``), else only the cache is read. The vocal is cut into 20 s windows (a
whole song at once would need memory quadratic in its length); each window gives exactly
``window / stride`` frames, so frame k of the song covers [k * frame_s, (k + 1) * frame_s).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.errors import first_line
from yue_train.lyrics.align import Emissions
from yue_train.lyrics.backends.text import needs_romanization, romanize, strip_accents, words
from yue_train.lyrics.viterbi import DEFAULT_PENALTIES

WINDOW_S = 20.0
SAMPLE_RATE = 16_000


class AlignerWeightsError(OSError):
    """The aligner's weights cannot be loaded; the message names them and how to get them."""


def _load(source: str, download: bool, device: str) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, Wav2Vec2ForCTC

    from yue_train.models import hub

    local = Path(source).expanduser()
    where = str(local) if local.is_dir() else source
    only_cache = local.is_dir() or not download
    try:
        model = hub.from_pretrained(Wav2Vec2ForCTC, where, "model", local_files_only=only_cache).eval().to(device)
        tokenizer = hub.from_pretrained(AutoTokenizer, where, "config", local_files_only=only_cache)
    except (OSError, ValueError) as exc:
        raise AlignerWeightsError(
            f"aligner weights {source} cannot be loaded ({first_line(exc)[:200]}); get them with "
            f"`huggingface-cli download {source} --local-dir DIR` and pass --aligner DIR"
        ) from exc
    return model, tokenizer


class CtcAligner:
    """Frame-level log-probabilities of a CTC model's characters over a vocal at 16 kHz."""

    sample_rate = SAMPLE_RATE
    penalties = DEFAULT_PENALTIES

    def __init__(self, source: str, device: str = "cpu", download: bool = True) -> None:
        self.name = source
        self.device = device
        self.model, tokenizer = _load(source, download, device)
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        blank = self.vocab.get("<blank>", tokenizer.pad_token_id)
        if blank is None:
            raise AlignerWeightsError(
                f"aligner {source}: its tokenizer has no <blank> or pad token to use as CTC blank"
            )
        self.blank = int(blank)
        delim = getattr(tokenizer, "word_delimiter_token", None)
        self.delimiter = self.vocab.get(delim) if delim else self.vocab.get(" ")
        self.lowercase = not any(k.isalpha() and k.isupper() for k in self.vocab if len(k) == 1)
        self.stride = math.prod(self.model.config.conv_stride)
        # Latin text is romanized too when the alphabet lacks its accented letters (MMS aligners: a-z).
        self.latin_only = all(not k.isalpha() or k.isascii() for k in self.vocab if len(k) == 1)

    @property
    def frame_s(self) -> float:
        return self.stride / self.sample_rate

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a lyrics line: words joined by the word delimiter when the model has one."""
        if needs_romanization(text):
            text = romanize(text)
        elif self.latin_only:
            text = strip_accents(text)
        ids: list[int] = []
        for word in words(text):
            chars = [self.vocab[c] for c in (word if self.lowercase else word.upper()) if c in self.vocab]
            if not chars:
                continue
            if ids and self.delimiter is not None:
                ids.append(self.delimiter)
            ids += chars
        return ids

    def emissions(self, audio: np.ndarray) -> Emissions:
        import torch

        window = int(WINDOW_S * self.sample_rate) // self.stride * self.stride
        parts = []
        for a in range(0, len(audio), window):
            chunk = np.asarray(audio[a : a + window], dtype=np.float32)
            n_frames = max(1, int(round(len(chunk) / self.stride)))
            if len(chunk) < self.stride * 2:  # too short for the feature encoder's receptive field
                chunk = np.pad(chunk, (0, self.stride * 2 - len(chunk)))
            x = (chunk - chunk.mean()) / (chunk.std() + 1e-7)  # what Wav2Vec2FeatureExtractor(do_normalize) does
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(x)[None].to(self.device)).logits[0].float()
            lp = torch.log_softmax(logits, dim=-1).cpu().numpy()
            if lp.shape[0] < n_frames:  # the convolutions drop the last partial frame(s): repeat the last one
                lp = np.concatenate([lp, np.repeat(lp[-1:], n_frames - lp.shape[0], axis=0)])
            parts.append(lp[:n_frames])
        return Emissions(np.concatenate(parts), self.frame_s, self.blank, self.tokenize)
