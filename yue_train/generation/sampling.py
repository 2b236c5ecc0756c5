"""Stage-1 sampling settings and the logits pipeline, in the order Hugging Face ``generate`` applies it.

The released inference calls ``generate`` with guidance, a repetition penalty, ``min_new_tokens=100``
(with ``<EOA>`` as eos), a block on ids below 32,002, then temperature and top-p. We drive the model
ourselves (batched guidance, one KV cache), so the same steps are written out here, in that order.

:func:`stage1_next_token` runs them over the whole vocabulary (the reference). :class:`Stage1Sampler`,
which generation uses, runs them over the ids a step may emit only (1,025 by default, not 83,968): ids
outside are -inf after the blocks, so their probability is 0 and dropping them changes no probability.
Guidance still normalises over the whole vocabulary, and the repetition penalty reads a running mask of
the ids seen, not the growing context, so a step does no host synchronisation and no work that grows
with the context.
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
    # Steps between host checks for <EOA> (each check waits for the device); the tokens sampled after an
    # <EOA> inside that window are dropped. 0: 1 on CPU (a check costs nothing there), 16 on CUDA.
    eoa_check_every: int = 0
    # A static KV cache sized for the section (fixed shapes every step), and the per-token step under
    # torch.compile (CUDA graphs; implies static_cache). For CUDA: on CPU compiling costs more than it saves.
    static_cache: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_new_tokens < 1 or self.min_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 1 and min_new_tokens >= 0")
        if self.eoa_check_every < 0:
            raise ValueError(f"eoa_check_every must be >= 0, got {self.eoa_check_every}")

    def check_every(self, device: torch.device) -> int:
        return self.eoa_check_every or (16 if device.type == "cuda" else 1)


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


def allowed_ids(vocab_size: int, cfg: SamplingConfig) -> torch.Tensor:
    """The ids a stage-1 step may emit, ascending: ``<EOA>`` and codebook 0 (``audio_ids_only``), or every id
    from ``<EOA>`` up (the released rule)."""
    if not cfg.audio_ids_only:
        return torch.arange(vocab.MIN_SAMPLED_ID, vocab_size)
    lo, hi = cl.codebook_range(0)
    return torch.cat([torch.tensor([vocab.EOA]), torch.arange(lo, min(hi, vocab_size))])


class Stage1Sampler:
    """:func:`stage1_next_token` over the allowed ids only, for one section (see the module docstring).

    ``context`` (1-D) is the section's prompt; :meth:`next_token` returns (1,) ids on the device, and
    records them as seen. Same scores as the reference for every allowed id, so greedy picks agree and
    sampling draws from the same distribution."""

    def __init__(self, vocab_size: int, cfg: SamplingConfig, context: torch.Tensor) -> None:
        device = context.device
        self.cfg = cfg
        self.allowed = allowed_ids(vocab_size, cfg).to(device)
        self.slot = torch.full((vocab_size,), -1, dtype=torch.long, device=device)
        self.slot[self.allowed] = torch.arange(len(self.allowed), device=device)
        self.eoa = int((self.allowed == vocab.EOA).nonzero()[0, 0])
        self.seen = torch.zeros(1, len(self.allowed) + 1, dtype=torch.bool, device=device)  # last: not allowed
        self._mark(context)

    def _mark(self, ids: torch.Tensor) -> None:
        self.seen[0, self.slot[ids]] = True  # slot -1 lands on the spare last column

    def scores(
        self, cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None, n_generated: int, guidance: float
    ) -> torch.Tensor:
        """(1, K) scores of the allowed ids after guidance, the repetition penalty and the ``<EOA>`` block."""
        cfg = self.cfg
        scores = guided_scores(cond_logits, uncond_logits, guidance).index_select(1, self.allowed)
        if cfg.repetition_penalty != 1.0:
            penalised = torch.where(scores < 0, scores * cfg.repetition_penalty, scores / cfg.repetition_penalty)
            scores = torch.where(self.seen[:, :-1], penalised, scores)
        if n_generated < cfg.min_new_tokens:
            scores[:, self.eoa] = float("-inf")
        return scores

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """(1, K) sampling probabilities of the allowed ids: temperature, then top-p."""
        return top_p_filter(scores / self.cfg.temperature, self.cfg.top_p).softmax(dim=-1)

    def next_token(
        self,
        cond_logits: torch.Tensor,
        uncond_logits: torch.Tensor | None,
        n_generated: int,
        guidance: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        scores = self.scores(cond_logits, uncond_logits, n_generated, guidance)
        if self.cfg.greedy:
            pick = scores.argmax(dim=-1)
        else:
            pick = torch.multinomial(self.probabilities(scores), 1, generator=generator).squeeze(1)
        token = self.allowed[pick]
        self._mark(token)
        return token


class FullVocabSampler:
    """The reference pipeline as a sampler: :func:`stage1_next_token` over the whole vocabulary, the
    context kept as a growing tensor (what generation did before :class:`Stage1Sampler`). For tests and
    benchmarks."""

    def __init__(self, vocab_size: int, cfg: SamplingConfig, context: torch.Tensor) -> None:
        self.cfg = cfg
        self.history = context[None]

    def next_token(
        self,
        cond_logits: torch.Tensor,
        uncond_logits: torch.Tensor | None,
        n_generated: int,
        guidance: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        token = stage1_next_token(cond_logits, uncond_logits, self.history, n_generated, self.cfg, guidance, generator)
        self.history = torch.cat([self.history, token[None]], dim=1)
        return token
