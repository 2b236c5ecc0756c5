"""One training step, timed: LoRA (yue-train's path beside the official way) or full-parameter training
under each data-parallel strategy. Each mode runs in its own process, so its peak RSS is its own.

  python benchmarks/train_step.py                     # CUDA: real 7B architecture, random bf16 weights, seq 8192
  python benchmarks/train_step.py --arch tiny_s1      # CPU: the tiny model, seq 2048 (what runs without a GPU)
  python benchmarks/train_step.py --modes ours,official,ours:full,ours:chunked_recompute --repeats 3
  python benchmarks/train_step.py --full --arch yue_s2_1b --modes single,fsdp2,deepspeed_zero2
                                                      # full-parameter steps, one process per strategy's group

"ours": PEFT LoRA r=64 on q,k,v,o, gradient checkpointing, a packed row of several documents
(restarting position_ids, no mask, no cache) and the per-role loss from hidden states with
``trainer.loss.impl=auto`` under ``--memory-budget-gib`` (``ours:IMPL`` names an implementation).
"official": the same LoRA and checkpointing, one unpacked row, ``model(input_ids, labels=input_ids)``
(transformers' own loss over full logits), as the official YuE fine-tuning does.
Reports tokens/s (wall and per CPU-second of the process), peak RSS of the process and, on CUDA, peak GPU
memory (target for "ours": <= 20 GiB at 8k, to fit one 24 GB card). With ``--repeats R`` the modes run
interleaved R times and each figure is the median; the last line gives ours/official ratios.

``--full``: every parameter trains through the trainer's own pieces (PackedLossModule + the strategy
classes of ``distributed=``); on CUDA with fp32 master weights and bf16 compute, as the trainer does.
Model FLOPs utilisation uses 6·N (LoRA: 4·N, no weight gradients) + 12·layers·hidden·seq FLOPs per token
(N: parameters without the input embedding; attention counted as if unmasked) over ``--peak-tflops``
(default on CUDA: 989, H100/H200 dense bf16).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

MODES = Path(__file__).resolve().parent / "train_step_modes.py"  # the code of each mode's process


def median_rows(rows: list[dict]) -> dict:
    """One row per mode: the median of each number over the repeats."""
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, float) and key != "loss":
            out[key] = round(statistics.median(r[key] for r in rows), 3)
    out["repeats"] = len(rows)
    return out


def parse_args() -> argparse.Namespace:
    """The options of the parent and of each mode's process (defaults that depend on CUDA: None, resolved there)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default=None, help="default: yue_s1_7b on CUDA, tiny_s1 on CPU")
    p.add_argument("--seq-len", type=int, default=None, help="default: 8192 on CUDA, 2048 on CPU")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--loss-impl", default="auto", help="--full: trainer.loss.impl (LoRA: name it in --modes)")
    p.add_argument("--memory-budget-gib", type=float, default=1.0, help="trainer.loss.memory_budget_gib")
    p.add_argument("--attn", default="auto")
    p.add_argument(
        "--modes", default=None,
        help="LoRA: ours,official (default), ours:IMPL for one loss implementation; --full: single,fsdp2,deepspeed_zero2",
    )  # fmt: skip
    p.add_argument("--full", action="store_true", help="full-parameter training under each strategy in --modes")
    p.add_argument("--peak-tflops", type=float, default=None, help="for MFU (0: not reported; default 989 on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch default)")
    p.add_argument("--repeats", type=int, default=1, help="run the modes interleaved this often; report medians")
    p.add_argument("--json", default=None, help="also write the rows (and ratios) to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # train_step_modes.py: the one mode to run
    return p.parse_args()


def main() -> None:
    args = parse_args()
    modes = (args.modes or ("single,fsdp2,deepspeed_zero2" if args.full else "ours,official")).split(",")
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            proc = subprocess.run(
                [sys.executable, str(MODES), *sys.argv[1:], "--child", mode], capture_output=True, text=True
            )
            rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not rows:
                raise SystemExit(f"mode {mode} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
            runs[mode].append(rows[-1])
    results = [median_rows(r) if "error" not in r[0] else r[0] for r in runs.values()]
    for row in results:
        print(json.dumps(row), flush=True)
    by_mode = {r["mode"]: r for r in results}
    summary = {}
    if "ours" in by_mode and "official" in by_mode and "error" not in by_mode["ours"]:
        ours, official = by_mode["ours"], by_mode["official"]
        keys = ["tokens_per_s", "tokens_per_cpu_s", "peak_rss_gib"] + (["peak_gib"] if "peak_gib" in ours else [])
        summary = {f"ratio_{k}": round(ours[k] / official[k], 3) for k in keys if k in official}
        print(json.dumps({"ours_vs_official": summary}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": results, "ours_vs_official": summary}, f, indent=1)


if __name__ == "__main__":
    main()
