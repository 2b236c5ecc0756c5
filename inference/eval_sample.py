"""A short generated sample from a training checkpoint, as W&B audio: the evaluation hook training calls
when a codec is configured (``logging.sample``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inference.sampling import SamplingConfig
from inference.stage1 import generate_stage1
from yue_train.format import sequences as seq
from yue_train.format.parsing import ParseError, parse_stage1_output
from yue_train.tokenizer.mm_tokenizer import MMTokenizer

DEFAULT_GENRES = "pop female bright vocal piano"
DEFAULT_LYRICS = "[verse]\nla la la\n"


@torch.no_grad()
def sample_stage1_codes(
    model: torch.nn.Module,
    tokenizer: MMTokenizer,
    genres: str = DEFAULT_GENRES,
    lyrics: str = DEFAULT_LYRICS,
    seconds: float = 5.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Vocal and instrumental codebook-0 codes ``(1, T)`` of the first lyrics section, at most ``seconds`` long."""
    tokens = max(2, int(seconds * 100))
    sections = seq.split_lyrics(lyrics)
    first = seq.first_section_prompt(tokenizer, genres, sections)
    cfg = SamplingConfig(max_new_tokens=tokens, min_new_tokens=min(100, tokens))
    was_training = model.training
    model.eval()
    try:
        result = generate_stage1(model, first, [], cfg, seed=seed, progress=False)
    finally:
        model.train(was_training)
    return parse_stage1_output(result.ids)


def wandb_sample(
    model: torch.nn.Module, tokenizer: MMTokenizer, codec: Any, step: int, **kwargs: Any
) -> dict[str, Any]:
    """``{"sample/vocal": wandb.Audio, "sample/inst": wandb.Audio}`` for ``wandb.log`` (16 kHz codec decode)."""
    from yue_train.codec.playback import wandb_audio

    try:
        vocal, inst = sample_stage1_codes(model, tokenizer, **kwargs)
    except ParseError as e:  # an early checkpoint can emit unusable ids; report, do not crash training
        return {"sample/error": str(e)}
    if vocal.shape[1] == 0:
        return {"sample/error": "no audio frames generated"}
    return {
        "sample/vocal": wandb_audio(codec, vocal, caption=f"step {step} vocal"),
        "sample/inst": wandb_audio(codec, inst, caption=f"step {step} accompaniment"),
    }
