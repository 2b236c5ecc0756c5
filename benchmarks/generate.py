"""Generation speed: stage-1 tokens/s, stage-2 frames/s and the real-time factor, fast path vs naive loop.

    python benchmarks/generate.py                                   # CPU, tiny models
    python benchmarks/generate.py --s1 yue_s1_7b --s2 yue_s2_1b --seconds 30 --device cuda --naive-tokens 300

Each figure is given per wall second and per CPU second of this process (on a shared machine the CPU
figure is the steadier one). Stage 1 runs three ways: the fast path (sampling over the allowed ids),
the same loop with the full-vocabulary sampling pipeline (:class:`FullVocabSampler`: what the loop did
before), and Hugging Face ``generate``.

Models are the named architectures (yue_train.models.architectures) with random weights; token counts
are fixed (<EOA> is suppressed until the budget), so numbers do not depend on what a model emits.
Stage 1 produces 100 tokens per second of music (vocal + instrumental); stage 2 generates 7 tokens per
frame for both tracks, 50 frames per second. The naive figures are what the released code does: stage 1
through ``generate`` with ``guidance_scale`` (a second model call per step for the unconditional branch),
stage 2 re-running the whole prompt for every token (measured on ``--naive-frames`` frames, and stage 1's
comparisons on ``--naive-tokens`` tokens when given, both scaled linearly to the full length).
``--json PATH`` writes every figure to one file.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from transformers import LlamaForCausalLM, LogitsProcessorList

from yue_train.format import vocab
from yue_train.generation.sampling import FullVocabSampler, SamplingConfig
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


def timed(fn, device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


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
    ap.add_argument(
        "--naive-tokens",
        type=int,
        default=0,
        help="stage-1 full-vocabulary and HF-generate runs on this many tokens (0: all)",
    )
    ap.add_argument("--stages", default="12", help="1, 2 or 12")
    ap.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch default)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--compile", action="store_true", help="also stage 1 with a static cache and torch.compile")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(
        f"# device {args.device} ({device_name(args.device)}), {dtype}, {args.seconds:g} s of music, "
        f"stage 1 {args.s1}, stage 2 {args.s2}"
    )

    results: dict = {"device": device_name(args.device), "dtype": str(dtype), "seconds_of_music": args.seconds}
    if "1" in args.stages:
        results["stage1"] = stage1(args, dtype, rng)
    if "2" in args.stages:
        results["stage2"] = stage2(args, dtype, rng)
    if "1" in args.stages and "2" in args.stages:
        fast = results["stage1"]["fast"]["wall_s"] + results["stage2"]["fast"]["wall_s"]
        naive = results["stage1"]["hf_generate"]["wall_s"] + results["stage2"]["naive"]["wall_s"]
        results["wall_s"] = {"fast": round(fast, 2), "naive": round(naive, 2)}
        print(f"{args.seconds:g} s of music: fast {fast:.2f} s, naive {naive:.2f} s "
              f"(real-time factor {fast / args.seconds:.2f} vs {naive / args.seconds:.2f})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


def _figures(units: float, wall: float, cpu: float, scale: float = 1.0) -> dict:
    wall, cpu = wall * scale, cpu * scale
    return {"wall_s": round(wall, 3), "per_s": round(units / wall, 2), "per_cpu_s": round(units / cpu, 2)}


def stage1(args: argparse.Namespace, dtype: torch.dtype, rng: np.random.Generator) -> dict:
    s1 = build(args.s1, args.device, dtype)
    n_tokens = int(args.seconds * 100)
    prompt = torch.as_tensor(rng.integers(0, 32000, args.prompt_tokens))
    prompt[-2:] = torch.tensor([vocab.SOA, vocab.XCODEC])
    cfg = SamplingConfig(max_new_tokens=n_tokens, min_new_tokens=n_tokens)
    out = {"tokens": n_tokens}
    out["fast"] = _figures(n_tokens, *timed(lambda: generate_section(s1, prompt, cfg, guidance=1.5), args.device))
    if args.compile:  # static KV cache + torch.compile'd step; the first (short) section pays for compiling
        fixed = SamplingConfig(max_new_tokens=n_tokens, min_new_tokens=n_tokens, compile=True)
        warm = SamplingConfig(max_new_tokens=16, min_new_tokens=16, compile=True)
        compile_s, _ = timed(lambda: generate_section(s1, prompt, warm, guidance=1.5), args.device)
        compiled = timed(lambda: generate_section(s1, prompt, fixed, guidance=1.5), args.device)
        out["fast_compiled"] = {**_figures(n_tokens, *compiled), "first_section_s": round(compile_s, 2)}
    k = min(args.naive_tokens or n_tokens, n_tokens)
    short = SamplingConfig(max_new_tokens=k, min_new_tokens=k)
    full_vocab = lambda: generate_section(s1, prompt, short, guidance=1.5, sampler=FullVocabSampler)  # noqa: E731
    out["full_vocab_sampling"] = {**_figures(n_tokens, *timed(full_vocab, args.device), scale=n_tokens / k),
                                  "measured_tokens": k}  # fmt: skip
    hf = timed(
        lambda: s1.generate(
            input_ids=prompt[None].to(args.device),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=args.device),
            max_new_tokens=k, min_new_tokens=k, do_sample=True, top_p=0.93, temperature=1.0,
            repetition_penalty=1.1, guidance_scale=1.5, eos_token_id=vocab.EOA, pad_token_id=vocab.EOA,
            logits_processor=LogitsProcessorList([_BlockText()]),
        ),
        args.device,
    )  # fmt: skip
    out["hf_generate"] = {**_figures(n_tokens, *hf, scale=n_tokens / k), "measured_tokens": k}
    print(
        f"stage 1: {n_tokens} tokens  "
        + "   ".join(f"{name} {f['per_s']:8.1f} tok/s {f['per_cpu_s']:8.1f} tok/CPU-s ({f['wall_s']:.2f} s)"
                     for name, f in out.items() if isinstance(f, dict))
    )  # fmt: skip
    return out


def stage2(args: argparse.Namespace, dtype: torch.dtype, rng: np.random.Generator) -> dict:
    s2 = build(args.s2, args.device, dtype)
    frames = int(args.seconds * 50)
    tracks = [rng.integers(0, 1024, frames), rng.integers(0, 1024, frames)]  # vocal + instrumental
    out = {"frames": 2 * frames}
    fast = timed(lambda: generate_stage2(s2, tracks, batch_size=args.batch_size, progress=False), args.device)
    out["fast"] = _figures(2 * frames, *fast)
    k = min(args.naive_frames, frames)
    naive = timed(lambda: generate_stage2_naive(s2, tracks[0][:k]), args.device)
    out["naive"] = {**_figures(2 * frames, *naive, scale=2 * frames / k), "measured_frames": k}
    print(
        f"stage 2: {2 * frames} frames  "
        + "   ".join(f"{name} {f['per_s']:8.2f} frames/s {f['per_cpu_s']:8.2f} frames/CPU-s ({f['wall_s']:.2f} s)"
                     for name, f in out.items() if isinstance(f, dict))
    )  # fmt: skip
    return out


if __name__ == "__main__":
    main()
