"""Stage-1 generation: section by section, with classifier-free guidance batched into one KV cache.

Per section the released code calls ``generate`` with ``guidance_scale``: Hugging Face then runs an
unconditional branch whose context is only the prompt's last token plus what has been generated, in a
second model call per step. Here both branches are rows of one batch (the unconditional row is
left-padded and masked), so each step is one forward of batch 2 with one cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from yue_train.format import vocab
from yue_train.format.sequences import DocBuilder
from yue_train.generation.cache_api import compiled_step, forward_step, static_cache
from yue_train.generation.sampling import FullVocabSampler, SamplingConfig, Stage1Sampler
from yue_train.progress import Advance, token_bar


def context_window(model: torch.nn.Module) -> int:
    """The context a model was trained for: ``max_position_embeddings`` of its config (16,384 for stage 1)."""
    return int(model.config.max_position_embeddings)


@dataclass
class SectionStats:
    prompt_tokens: int
    new_tokens: int
    seconds: float
    truncated_context: bool
    eoa: bool = True  # the model ended the section itself (False: the token budget ran out first)


@dataclass
class Stage1Result:
    ids: np.ndarray  # the whole sequence: prompts and generated tokens
    sections: list[SectionStats] = field(default_factory=list)


def window(ids: torch.Tensor, max_new_tokens: int, model_window: int) -> tuple[torch.Tensor, bool]:
    """The released rule: keep the last ``model_window - max_new_tokens - 1`` tokens of an over-long context."""
    max_context = model_window - max_new_tokens - 1
    if ids.shape[-1] > max_context:
        return ids[..., -max_context:], True
    return ids, False


@torch.no_grad()
def generate_section(
    model: torch.nn.Module,
    context: torch.Tensor,
    cfg: SamplingConfig,
    guidance: float,
    generator: torch.Generator | None = None,
    sampler: type[Stage1Sampler] | type[FullVocabSampler] = Stage1Sampler,
    advance: Advance | None = None,
) -> torch.Tensor:
    """Generate one section after ``context`` (1-D ids ending in ``<SOA> <xcodec>``); returns the new ids,
    ending in ``<EOA>`` (appended when the budget runs out, as the released code does). ``sampler``:
    :class:`FullVocabSampler` runs the full-vocabulary reference pipeline instead (tests, benchmarks).
    ``advance(1)`` is called for every token sampled (a progress bar's ``update``)."""
    device = next(model.parameters()).device
    context = context.to(device)
    n = context.shape[0]
    use_cfg = guidance != 1
    if use_cfg:
        # row 0: the full context; row 1 (unconditional): only the last context token, left-padded
        input_ids = torch.stack([context, torch.full_like(context, context[-1])])
        attention_mask = torch.zeros(2, n, dtype=torch.long, device=device)
        attention_mask[0] = 1
        attention_mask[1, -1] = 1
        position_ids = torch.stack([torch.arange(n, device=device), torch.zeros(n, dtype=torch.long, device=device)])
    else:
        input_ids = context[None]
        attention_mask = torch.ones(1, n, dtype=torch.long, device=device)
        position_ids = torch.arange(n, device=device)[None]
    static = cfg.static_cache or cfg.compile
    cache = None
    if static:
        cache, attention_mask = static_cache(model, attention_mask, n + cfg.max_new_tokens)
    logits, cache = forward_step(model, input_ids, cache, attention_mask=attention_mask, position_ids=position_ids)
    runner = compiled_step(model) if cfg.compile else None
    picker = sampler(logits.shape[-1], cfg, context)
    check_every = cfg.check_every(device)
    generated: list[torch.Tensor] = []
    for step in range(cfg.max_new_tokens):
        token = picker.next_token(logits[:1], logits[1:] if use_cfg else None, step, guidance, generator)  # (1,)
        generated.append(token)
        if advance is not None:
            advance(1)
        if step + 1 == cfg.max_new_tokens:
            break
        if (step + 1) % check_every == 0 and bool((torch.cat(generated[-check_every:]) == vocab.EOA).any()):
            break
        step_ids = token.repeat(input_ids.shape[0])[:, None]
        if static:
            attention_mask[:, n + step] = 1
        else:
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        position_ids = position_ids[:, -1:] + 1
        logits, cache = forward_step(
            model, step_ids, cache, runner, attention_mask=attention_mask, position_ids=position_ids
        )
    out = torch.cat(generated)
    ends = (out == vocab.EOA).nonzero()
    # What was sampled after the first <EOA> is dropped; without one, <EOA> closes the section.
    eoa = torch.tensor([vocab.EOA], device=device)
    out = out[: int(ends[0, 0]) + 1] if len(ends) else torch.cat([out, eoa])
    return out.cpu()


def generate_stage1(
    model: torch.nn.Module,
    first: DocBuilder | None,
    following: list[DocBuilder],
    cfg: SamplingConfig,
    seed: int = 0,
    model_window: int | None = None,
    progress: bool = True,
    history: np.ndarray | None = None,
) -> Stage1Result:
    """All sections: the first prompt, then for each later section its prompt appended to all that came before.

    Continuation: pass the ids of an earlier song as ``history`` and no ``first``; each section in
    ``following`` is then appended to it (the released guidance for later sections applies).
    ``model_window`` defaults to the model config's :func:`context_window`. ``progress``: a bar on stderr
    that counts each section's tokens as they are sampled.
    """
    if (first is None) == (history is None):
        raise ValueError("give either a first-section prompt or the history of a song to continue")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    model_window = model_window or context_window(model)
    if first is not None:
        sequence, prompts = torch.as_tensor(first.ids, dtype=torch.long), [None, *following]
    else:
        sequence, prompts = torch.as_tensor(history, dtype=torch.long), list(following)
    result = Stage1Result(ids=np.zeros(0, dtype=np.int64))
    with token_bar(f"stage 1 section 1/{len(prompts)}", progress) as bar:
        for i, prompt in enumerate(prompts):
            bar.set_description_str(f"stage 1 section {i + 1}/{len(prompts)}", refresh=False)
            if prompt is not None:
                sequence = torch.cat([sequence, torch.as_tensor(prompt.ids, dtype=torch.long)])
            context, truncated = window(sequence, cfg.max_new_tokens, model_window)
            started = time.perf_counter()
            guidance = cfg.guidance_first if (i == 0 and first is not None) else cfg.guidance_rest
            new = generate_section(model, context, cfg, guidance, generator, advance=bar.update)
            # A section that ran out of budget has max_new_tokens sampled ids plus the appended <EOA>.
            ended = len(new) <= cfg.max_new_tokens
            result.sections.append(
                SectionStats(len(context), len(new), time.perf_counter() - started, truncated, ended)
            )
            sequence = torch.cat([sequence, new])
    result.ids = sequence.numpy()
    return result
