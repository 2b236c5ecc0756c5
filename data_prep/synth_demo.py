"""``yue-prep synth-demo``: writes :mod:`yue_train.data.synthetic_audio` songs into a folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from yue_train.data.synthetic_audio import synth_demo


def add_synth_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder to write the song folders into")
    p.add_argument("--n", type=int, default=8, help="number of songs (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="song i depends only on (seed, i) (default: 0)")
    p.add_argument(
        "--section-seconds", type=float, default=4.0, help="typical section length; a song has 6 (default: 4.0)"
    )
    p.add_argument("--sample-rate", type=int, default=16_000, help="sample rate of the written WAVs (default: 16000)")
    p.add_argument(
        "--mix-only",
        action="store_true",
        help="songs as users have them: song.mp3 (the mix), lyrics.lrc and tags.txt, no stems",
    )


def cmd_synth_demo(args: argparse.Namespace) -> int:
    if args.n < 1 or args.section_seconds <= 0:
        print("yue-prep synth-demo: error: --n must be >= 1 and --section-seconds > 0", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    songs = synth_demo(args.out, args.n, args.seed, args.section_seconds, args.sample_rate, args.mix_only)
    dt = time.perf_counter() - t0
    seconds = sum(s["seconds"] for s in songs)
    print(
        f"wrote {len(songs)} songs ({seconds / 60:.1f} min of audio) -> {args.out} in {dt:.1f} s ({len(songs) / dt:.1f} songs/s)"
    )
    return 0
