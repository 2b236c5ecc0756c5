"""Tokenizing throughput of `yue-prep tokenize`: documents/s and tokens/s per worker.

    python benchmarks/prep_throughput.py --songs 64 --workers 1 2 --mode cot icl stage2

Songs are the synthetic corpus (50 s each, 8 codebooks); the tokenizer is the real one when
--tokenizer is given, else the generated stand-in (same id layout).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from data_prep.tokenize_manifest import TokenizeOptions, run_tokenize
from yue_train.data.synthetic import write_synthetic_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mode", nargs="+", default=["cot", "icl", "stage2"])
    ap.add_argument("--tokenizer", default=None)
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.songs} synthetic songs of 54 s"
    )
    print(f"{'mode':8s} {'workers':>7s} {'docs/s':>9s} {'tokens/s':>12s} {'tokens/s/worker':>16s}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_synthetic_manifest(Path(tmp) / "songs", n_songs=args.songs)
        for mode in args.mode:
            for workers in args.workers:
                opts = TokenizeOptions(
                    manifest=manifest,
                    out=Path(tmp) / f"{mode}-{workers}",
                    root=manifest.parent,
                    tokenizer=args.tokenizer,
                    mode=mode,
                    workers=workers,
                    progress=False,
                )
                summary, _ = run_tokenize(opts)
                secs = summary["elapsed_s"]
                docs, toks = summary["documents_written"], summary["tokens_total"]
                print(f"{mode:8s} {workers:7d} {docs / secs:9.1f} {toks / secs:12,.0f} {toks / secs / workers:16,.0f}")


if __name__ == "__main__":
    main()
