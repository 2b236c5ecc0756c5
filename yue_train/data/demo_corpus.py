"""A small generated corpus so ``yue-train recipe=demo`` runs on a fresh machine with no data.

Songs get *learnable* random codes (each song repeats a short melody over a small code alphabet, the
instrumental loops a short pattern), so a tiny model's loss visibly falls within a couple hundred steps;
uniformly random codes would only let it learn the code range. Documents are built with the real
sequence builders and written with the real shard writer. Stand-in until ``yue-prep synth-demo`` lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yue_train.data.shards import ShardWriter, write_json_atomic
from yue_train.format import codec_layout as cl
from yue_train.format.sequences import build_cot_document, build_stage2_document
from yue_train.format.song import Segment, Song
from yue_train.tokenizer import load_tokenizer

DONE_NAME = "demo_corpus.json"
_GENRES = ["rock", "pop", "jazz", "folk", "electronic", "soul", "metal", "blues"]
_MOODS = ["bright", "dark", "calm", "energetic", "sad", "happy"]
_LINES = ["love the night", "fly away tonight", "hold my heart", "the city lights", "sing again", "rain and sun"]


def _motif_track(rng: np.random.Generator, n_frames: int, n_codebooks: int, alphabet: int, period: int) -> np.ndarray:
    """(n_codebooks, n_frames) codes: a random motif of ``period`` frames over ``alphabet`` codes, repeated."""
    motif = rng.integers(0, alphabet, size=(n_codebooks, period))
    reps = -(-n_frames // period)
    return np.tile(motif, reps)[:, :n_frames]


def demo_song(rng: np.random.Generator, idx: int, seconds: float) -> Song:
    n_frames = int(seconds * cl.FRAMES_PER_SECOND)
    vocals = _motif_track(rng, n_frames, 1, alphabet=48, period=int(rng.integers(4, 9)))
    inst = _motif_track(rng, n_frames, 1, alphabet=48, period=int(rng.integers(2, 5)))
    half = n_frames // 2
    lines = rng.choice(_LINES, size=2, replace=False)
    segments = [
        Segment(f"[verse]\n{lines[0]}\n\n", 0, half, half / cl.FRAMES_PER_SECOND),
        Segment(f"[chorus]\n{lines[1]}\n\n", half, n_frames, (n_frames - half) / cl.FRAMES_PER_SECOND),
    ]
    genres = f"{rng.choice(_MOODS)}, {rng.choice(_GENRES)}"
    return Song(
        id=f"demo-{idx:05d}",
        genres=genres,
        segments=segments,
        audio_length_in_sec=n_frames / cl.FRAMES_PER_SECOND,
        vocals=vocals,
        instrumental=inst,
    )


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
    if (out / DONE_NAME).exists():
        return out
    rng = np.random.default_rng(seed)
    tokenizer = load_tokenizer(None) if stage == 1 else None
    with ShardWriter(out, prefix=f"demo-s{stage}", max_docs=docs_per_shard) as writer:
        for i in range(n_songs):
            if stage == 1:
                song = demo_song(rng, i, float(rng.uniform(*seconds)))
                writer.write(build_cot_document(tokenizer, song))
            else:
                n_frames = 300 * int(rng.integers(1, 3))
                codes = _motif_track(rng, n_frames, cl.STAGE2_CODEBOOKS, alphabet=64, period=int(rng.integers(30, 60)))
                writer.write(build_stage2_document(codes, f"demo-s2-{i:05d}"))
        shards = writer.close()
    # Written last: a folder without it is incomplete and gets rebuilt.
    write_json_atomic(out / DONE_NAME, {"n_songs": n_songs, "stage": stage, "seed": seed, "shards": shards})
    return out
