"""Stage-1 sampling settings and the logits pipeline, in the order Hugging Face ``generate`` applies it.

The released inference calls ``generate`` with guidance, a repetition penalty, ``min_new_tokens=100``
(with ``<EOA>`` as eos), a block on ids below 32,002, then temperature and top-p. We drive the model
ourselves (batched guidance, one KV cache), so the same steps are written out here, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from yue_train.format import codec_layout as cl
from yue_train.format import vocab


@dataclass
class SamplingConfig:
    top_p: float = 0.93
    temperature: float = 1.0
    repetition_penalty: float = 1.1
    guidance_first: float = 1.5  # classifier-free guidance for the first section
    guidance_rest: float = 1.2
    max_new_tokens: int = 3000  # per section
    min_new_tokens: int = 100  # <EOA> is blocked before this many tokens
    greedy: bool = False
    # The released code only blocks ids below 32,002, so an untrained or drifting model can emit ids that
    # are not codebook-0 audio and the song cannot be decoded. By default we allow exactly what a stage-1
    # section can hold: codebook-0 ids and <EOA>. False reproduces the released rule.
    audio_ids_only: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 1 and min_new_tokens >= 0")


def guided_scores(cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Classifier-free guidance on log-probabilities (HF's UnbatchedClassifierFreeGuidanceLogitsProcessor).

    Without guidance HF adds no such processor, so later steps (the repetition penalty, which is not
    shift-invariant) see raw logits; so do they here.
    """
    if uncond_logits is None or scale == 1:
        return cond_logits.clone()
    cond = torch.log_softmax(cond_logits, dim=-1)
    uncond = torch.log_softmax(uncond_logits, dim=-1)
    return scale * (cond - uncond) + uncond


def apply_repetition_penalty(scores: torch.Tensor, context: torch.Tensor, penalty: float) -> torch.Tensor:
    """Every id present in ``context`` (B, L) is penalised once, as HF's RepetitionPenaltyLogitsProcessor."""
    if penalty == 1.0:
        return scores
    picked = torch.gather(scores, 1, context)
    picked = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores.scatter(1, context, picked)


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of ids whose probability reaches ``top_p`` (at least one), as HF's TopPLogitsWarper."""
    if top_p >= 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def stage1_next_token(
    cond_logits: torch.Tensor,
    uncond_logits: torch.Tensor | None,
    context: torch.Tensor,
    n_generated: int,
    cfg: SamplingConfig,
    guidance: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The next stage-1 token for each row: (B,) ids."""
    scores = guided_scores(cond_logits, uncond_logits, guidance)
    scores = apply_repetition_penalty(scores, context, cfg.repetition_penalty)
    if n_generated < cfg.min_new_tokens:
        scores[:, vocab.EOA] = float("-inf")
    scores[:, : vocab.MIN_SAMPLED_ID] = float("-inf")  # the released rule: nothing below <EOA>
    if cfg.audio_ids_only:
        lo, hi = cl.codebook_range(0)
        scores[:, vocab.EOA + 1 : lo] = float("-inf")
        scores[:, hi:] = float("-inf")
    if cfg.greedy:
        return scores.argmax(dim=-1)
    scores = top_p_filter(scores / cfg.temperature, cfg.top_p)
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)
