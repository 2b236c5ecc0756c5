"""A small generated corpus so ``yue-train recipe=demo`` runs on a fresh machine with no data.

Songs are :mod:`.synthetic` songs of the demo style: each track repeats a short motif over a small code
alphabet, so a tiny model's loss visibly falls within a couple hundred steps (uniformly random codes would
only let it learn the code range). Documents are built with the real sequence builders and written with
the real shard writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yue_train.data.shard_reader import DEMO_SUMMARY_NAME
from yue_train.data.shards import ShardWriter, write_summary
from yue_train.data.synthetic import demo_song, motif_codes
from yue_train.format import codec_layout as cl
from yue_train.format.sequences import build_cot_document, build_stage2_document
from yue_train.tokenizer import load_tokenizer


def write_demo_corpus(
    out_dir: str | Path,
    n_songs: int = 200,
    seconds: tuple[float, float] = (2.0, 4.0),
    stage: int = 1,
    seed: int = 0,
    docs_per_shard: int = 50,
) -> Path:
    """Write the corpus into ``out_dir`` unless a finished one is there already; returns ``out_dir``.

    Stage 1: CoT documents (synthetic tokenizer). Stage 2: 8-codebook documents of 1-2 six-second chunks.
    """
    out = Path(out_dir)
    if (out / DEMO_SUMMARY_NAME).exists():
        return out
    rng = np.random.default_rng(seed)
    tokenizer = load_tokenizer(None) if stage == 1 else None
    with ShardWriter(out, prefix=f"demo-s{stage}", max_docs=docs_per_shard, tokenizer=tokenizer) as writer:
        for i in range(n_songs):
            if stage == 1:
                song = demo_song(rng, f"demo-{i:05d}", float(rng.uniform(*seconds)))
                writer.write(build_cot_document(tokenizer, song))
            else:
                n_frames = 300 * int(rng.integers(1, 3))
                codes = motif_codes(rng, cl.STAGE2_CODEBOOKS, n_frames, alphabet=64, period=int(rng.integers(30, 60)))
                writer.write(build_stage2_document(codes, f"demo-s2-{i:05d}"))
        shards = writer.close()
    # Written last: a folder without it is incomplete and gets rebuilt.
    write_summary(out, {"n_songs": n_songs, "stage": stage, "seed": seed, "shards": shards}, writer, DEMO_SUMMARY_NAME)
    return out
