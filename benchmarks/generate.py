"""Generation speed: stage-1 tokens/s, stage-2 frames/s and the real-time factor, fast path vs naive loop.

    python benchmarks/generate.py                                   # CPU, tiny models
    python benchmarks/generate.py --s1 yue_s1_7b --s2 yue_s2_1b --seconds 30 --device cuda

Models are the named architectures (yue_train.models.architectures) with random weights; token counts
are fixed (<EOA> is suppressed until the budget), so numbers do not depend on what a model emits.
Stage 1 produces 100 tokens per second of music (vocal + instrumental); stage 2 generates 7 tokens per
frame for both tracks, 50 frames per second. The naive figures are what the released code does: stage 1
through ``generate`` with ``guidance_scale`` (a second model call per step for the unconditional branch),
stage 2 re-running the whole prompt for every token (measured on ``--naive-frames`` frames).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import LlamaForCausalLM, LogitsProcessorList

from yue_train.format import vocab
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.stage1 import generate_section
from yue_train.generation.stage2 import generate_stage2, generate_stage2_naive
from yue_train.models.architectures import architecture_config


def build(arch: str, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    config = architecture_config(arch, use_cache=True)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model.eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


class _BlockText:
    def __call__(self, input_ids, scores):
        scores[:, : vocab.MIN_SAMPLED_ID] = -float("inf")
        return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--s1", default="tiny_s1", help="stage-1 architecture (default tiny_s1; real: yue_s1_7b)")
    ap.add_argument("--s2", default="tiny_s2", help="stage-2 architecture (default tiny_s2; real: yue_s2_1b)")
    ap.add_argument("--seconds", type=float, default=2.0, help="music to generate (default 2 s on CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--prompt-tokens", type=int, default=400)
    ap.add_argument("--naive-frames", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16, help="stage-2 chunk rows per batch")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(
        f"# device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
        f"{dtype}, {args.seconds:g} s of music, stage 1 {args.s1}, stage 2 {args.s2}"
    )

    s1 = build(args.s1, args.device, dtype)
    n_tokens = int(args.seconds * 100)
    prompt = torch.as_tensor(rng.integers(0, 32000, args.prompt_tokens))
    prompt[-2:] = torch.tensor([vocab.SOA, vocab.XCODEC])
    cfg = SamplingConfig(max_new_tokens=n_tokens, min_new_tokens=n_tokens)
    t_fast, _ = timed(lambda: generate_section(s1, prompt, cfg, guidance=1.5), args.device)
    t_naive, _ = timed(
        lambda: s1.generate(
            input_ids=prompt[None].to(args.device),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=args.device),
            max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=True, top_p=0.93, temperature=1.0,
            repetition_penalty=1.1, guidance_scale=1.5, eos_token_id=vocab.EOA, pad_token_id=vocab.EOA,
            logits_processor=LogitsProcessorList([_BlockText()]),
        ),
        args.device,
    )  # fmt: skip
    print(f"stage 1: {n_tokens} tokens  fast {n_tokens / t_fast:8.1f} tok/s ({t_fast:.2f} s)   "
          f"hf-generate+cfg {n_tokens / t_naive:8.1f} tok/s ({t_naive:.2f} s)")  # fmt: skip

    s2 = build(args.s2, args.device, dtype)
    frames = int(args.seconds * 50)
    tracks = [rng.integers(0, 1024, frames), rng.integers(0, 1024, frames)]  # vocal + instrumental
    t2_fast, _ = timed(lambda: generate_stage2(s2, tracks, batch_size=args.batch_size, progress=False), args.device)
    k = min(args.naive_frames, frames)
    t2_naive, _ = timed(lambda: generate_stage2_naive(s2, tracks[0][:k]), args.device)
    print(f"stage 2: {2 * frames} frames  fast {2 * frames / t2_fast:8.1f} frames/s ({t2_fast:.2f} s)   "
          f"naive {k / t2_naive:8.2f} frames/s (on {k} frames)")  # fmt: skip
    total = t_fast + t2_fast
    naive_total = t_naive + t2_naive * (2 * frames) / k
    print(
        f"real-time factor (compute s / music s): fast {total / args.seconds:.2f}   naive {naive_total / args.seconds:.2f}"
    )


if __name__ == "__main__":
    main()
