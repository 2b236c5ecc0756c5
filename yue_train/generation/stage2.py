"""Stage-2 generation: codebook 0 -> codebooks 0..7, all 6-second chunks of all tracks in one batch.

The released code calls ``generate`` once per audio frame and re-encodes the whole growing prompt each
time. Here each chunk is a row with its own KV cache entry: after the chunk prompt of the training
format (:func:`yue_train.format.sequences.stage2_chunk_prompt`, ``<SOA> <stage_1> cb0... <stage_2>``) is
prefilled once, every frame costs 7 single-token steps (feed codebook 0, take codebooks 1..7 one at a
time, restricted to their own codebook's ids). The ids fed and taken are the frames of a stage-2
training document, in its order; chunks are the format's 6-second chunks.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.generation.cache_api import forward_step
from yue_train.progress import Advance, audio_bar


def _codebook_mask(vocab_size: int, k: int, device: torch.device) -> torch.Tensor:
    lo, hi = cl.codebook_range(k)
    mask = torch.full((vocab_size,), float("-inf"), device=device)
    mask[lo:hi] = 0
    return mask


def chunk_spans(n_frames: int, chunk_frames: int = seq.STAGE2_CHUNK_FRAMES) -> list[tuple[int, int]]:
    """Whole chunks, then the trailing partial chunk (generated on its own)."""
    return [(s, min(s + chunk_frames, n_frames)) for s in range(0, n_frames, chunk_frames)]


def chunk_prompt(cb0_codes: np.ndarray) -> np.ndarray:
    """The stage-2 condition of one chunk, from its codebook-0 codes (0..1023), as training builds it."""
    return seq.stage2_chunk_prompt(cl.track_ids(np.asarray(cb0_codes).reshape(1, -1))).ids


@torch.no_grad()
def generate_chunks(model: torch.nn.Module, cb0: torch.Tensor, advance: Advance | None = None) -> torch.Tensor:
    """Greedy stage 2 for a batch of equal-length chunks: (B, T) codebook-0 codes -> (B, 8, T) codes.
    ``advance(B)`` is called after every frame step (B frames done, one per chunk)."""
    device = next(model.parameters()).device
    cb0 = cb0.to(device)
    batch, n_frames = cb0.shape
    prompt = torch.as_tensor(np.stack([chunk_prompt(row) for row in cb0.cpu().numpy()]), device=device)
    _, cache = forward_step(model, prompt, None)
    masks = None
    out = torch.empty(batch, cl.STAGE2_CODEBOOKS, n_frames, dtype=torch.long, device=device)
    out[:, 0] = cb0
    pending = None  # codebook-7 token of the previous frame, fed together with this frame's codebook 0
    for f in range(n_frames):
        feed = cl.CODEC_OFFSET + cb0[:, f : f + 1]
        if pending is not None:
            feed = torch.cat([pending, feed], dim=1)
        logits, cache = forward_step(model, feed, cache)
        if masks is None:
            masks = [_codebook_mask(logits.shape[-1], k, device) for k in range(cl.STAGE2_CODEBOOKS)]
        for k in range(1, cl.STAGE2_CODEBOOKS):
            token = (logits + masks[k]).argmax(dim=-1, keepdim=True)
            out[:, k, f] = token[:, 0] - cl.codebook_range(k)[0]
            if k < cl.STAGE2_CODEBOOKS - 1:
                logits, cache = forward_step(model, token, cache)
            else:
                pending = token
        if advance is not None:
            advance(batch)
    return out.cpu()


def generate_stage2(
    model: torch.nn.Module,
    tracks: list[np.ndarray],
    batch_size: int = 16,
    chunk_frames: int = seq.STAGE2_CHUNK_FRAMES,
    progress: bool = True,
) -> list[np.ndarray]:
    """Codebook-0 codes of several tracks ((T,) or (1, T) each) -> their (8, T) codes.

    Chunks of equal length from every track are batched together (at most ``batch_size`` rows).
    ``progress``: a bar on stderr over all tracks' frames (as seconds of audio), advanced every frame step."""
    rows = [np.asarray(t).reshape(-1) for t in tracks]
    groups: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # chunk length -> (track, start, end)
    for t, codes in enumerate(rows):
        for start, end in chunk_spans(len(codes), chunk_frames):
            groups[end - start].append((t, start, end))
    outputs = [np.zeros((cl.STAGE2_CODEBOOKS, len(r)), dtype=np.int16) for r in rows]
    jobs = [
        (length, items[i : i + batch_size])
        for length, items in groups.items()
        for i in range(0, len(items), batch_size)
    ]
    with audio_bar(sum(len(r) for r in rows), "stage 2", progress) as bar:
        for _, items in jobs:
            cb0 = torch.as_tensor(np.stack([rows[t][s:e] for t, s, e in items]), dtype=torch.long)
            codes = generate_chunks(model, cb0, bar.update).numpy()
            for (t, s, e), c in zip(items, codes, strict=True):
                outputs[t][:, s:e] = c
    return outputs


@torch.no_grad()
def generate_stage2_naive(model: torch.nn.Module, cb0: np.ndarray) -> np.ndarray:
    """Reference loop in the released code's manner: every token re-runs the whole growing prompt (no
    cache). Greedy, codebook-restricted like :func:`generate_chunks`. For tests and benchmarks only."""
    device = next(model.parameters()).device
    cb0 = np.asarray(cb0).reshape(-1)
    ids = torch.as_tensor(chunk_prompt(cb0), device=device)[None]
    out = np.zeros((cl.STAGE2_CODEBOOKS, len(cb0)), dtype=np.int16)
    out[0] = cb0
    masks = None
    for f in range(len(cb0)):
        ids = torch.cat([ids, torch.tensor([[cl.CODEC_OFFSET + int(cb0[f])]], device=device)], dim=1)
        for k in range(1, cl.STAGE2_CODEBOOKS):
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            if masks is None:
                masks = [_codebook_mask(logits.shape[-1], j, device) for j in range(cl.STAGE2_CODEBOOKS)]
            token = (logits + masks[k]).argmax(dim=-1, keepdim=True)
            out[k, f] = int(token) - cl.codebook_range(k)[0]
            ids = torch.cat([ids, token], dim=1)
    return out
