"""Estimated peak GPU memory of one training step of the released architectures, computed on any machine.

  python benchmarks/estimate_memory.py                  # the table: 7B LoRA/QLoRA, 1B full
  python benchmarks/estimate_memory.py --json est.json  # also as JSON rows {model, mode, seq_len, peak_gib}

Each row runs the real step (model build, LoRA r=64 on q/k/v/o, activation checkpointing, the loss
implementation ``trainer.loss.impl=auto`` picks, backward, AdamW; bf16) on meta tensors and reports the
peak of live tensor bytes (:mod:`yue_train.training.memory_estimate` says how, and what it leaves out:
allocator slack and the CUDA context are not tensors). QLoRA counts the 4-bit base at 4.127 bits per weight.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from yue_train.config.schema import LoraConfig
from yue_train.models.architectures import architecture_config
from yue_train.training.memory_estimate import StepSpec, measure_step

ROWS = (
    ("s1_7b", "lora", 8192),
    ("s1_7b", "lora", 16384),
    ("s1_7b", "qlora", 8192),
    ("s1_7b", "qlora", 16384),
    ("s2_1b", "full", 8192),
)


def estimate_row(model: str, mode: str, seq_len: int, checkpointing: bool = True) -> dict:
    spec = StepSpec(
        architecture_config(f"yue_{model}"),
        seq_len,
        lora=None if mode == "full" else LoraConfig(enabled=True),
        qlora=mode == "qlora",
        gradient_checkpointing=checkpointing,
    )
    started = time.perf_counter()
    est = measure_step(spec)
    return {
        "model": model,
        "mode": mode,
        "seq_len": seq_len,
        "peak_gib": round(est.peak_gib, 2),
        "gradient_checkpointing": checkpointing,
        "parts_gib": {k: round(v / 2**30, 2) for k, v in est.parts.items()},
        "loss_impl": est.loss_impl,
        "note": est.note,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write the rows here as a JSON list")
    p.add_argument("--no-checkpointing", action="store_true", help="also each row without activation checkpointing")
    args = p.parse_args()
    rows = []
    print(f"{'model':<7}{'mode':<7}{'seq_len':>8}{'ckpt':>6}{'peak GiB':>10}  weights/grads/optim/rest GiB, loss")
    for model, mode, seq_len in ROWS:
        for ckpt in (True, False) if args.no_checkpointing else (True,):
            row = estimate_row(model, mode, seq_len, ckpt)
            rows.append(row)
            parts = "/".join(f"{v:.2f}" for v in row["parts_gib"].values())
            print(
                f"{model:<7}{mode:<7}{seq_len:>8}{'yes' if ckpt else 'no':>6}{row['peak_gib']:>10.2f}  {parts}, "
                f"{row['loss_impl']}"
            )
    print("live tensor bytes at the peak (meta tensors); add the CUDA context (~0.5 GiB) and allocator slack")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
