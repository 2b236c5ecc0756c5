"""Throughput of the song -> shards pipeline: synth-demo songs/s, codec encoding audio-hours/hour, build songs/s,
and per stage (separation, lyrics alignment, encoding) seconds of audio per CPU second (process CPU time, all
threads: the figure to divide a machine's cores by).

    python benchmarks/prep_build.py                       # tiny random codec (what the tests use)
    python benchmarks/prep_build.py --codec-size full     # random weights, the released codec's architecture
    python benchmarks/prep_build.py --codec DIR           # a converted codec folder (real weights)
    python benchmarks/prep_build.py --aligner MODEL       # alignment with a CTC model (default: pocketsphinx)

Encoding cost does not depend on the weights' values, so a random full-size codec times the real codec's
compute; the tiny codec's numbers only say how fast the tests run. Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from data_prep.build import BuildOptions, run_build
from yue_train.codec.testing import random_codec
from yue_train.data.synthetic_audio import synth_demo


def time_encode(codec_dir: Path, songs: Path, device: str) -> dict:
    """Pure codec time: the three stems of each song in one encode_many call, 8 codebooks."""
    from yue_train.codec.audio_io import load_audio
    from yue_train.codec.model import YueCodec

    codec = YueCodec.from_folder(codec_dir, device=device, load_upsamplers=False)
    folders = sorted(p for p in songs.iterdir() if p.is_dir())
    stems = [
        [load_audio(f / f"{n}.wav", allow_silent=True) for n in ("mix", "vocals", "instrumental")] for f in folders
    ]
    codec.encode_many(stems[0][:1], 8)  # warm-up (allocator, kernels)
    t0, c0 = time.perf_counter(), time.process_time()
    for waves in stems:
        codec.encode_many(waves, 8)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    audio_s = sum(len(w) for waves in stems for w in waves) / 16000
    return {
        "audio_s": round(audio_s, 2),
        "wall_s": round(dt, 3),
        "audio_hours_per_hour": round(audio_s / dt, 2),
        "audio_s_per_cpu_s": round(audio_s / cpu, 2),
    }


def time_align(songs: Path, truth: list[dict], aligner_name: str, device: str) -> dict:
    """Alignment of each demo song's lyrics to its vocal stem (emissions, VAD and Viterbi; model load excluded)."""
    from yue_train.codec.audio_io import load_audio
    from yue_train.lyrics.backends import load_aligner
    from yue_train.lyrics.song_folder import align_audio

    try:
        aligner = load_aligner(aligner_name, device)
    except (OSError, ImportError) as e:
        return {"skipped": str(e)}
    vocals = [load_audio(songs / t["id"] / "vocals.wav", aligner.sample_rate, allow_silent=True) for t in truth]
    texts = ["\n".join(f"[{s['label']}]\n" + "\n".join(s["lines"]) for s in t["sections"]) for t in truth]
    t0, c0 = time.perf_counter(), time.process_time()
    for audio, text in zip(vocals, texts, strict=True):
        align_audio(aligner, audio, text)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    audio_s = sum(len(a) for a in vocals) / aligner.sample_rate
    return {"aligner": aligner_name, "audio_s": round(audio_s, 2), "wall_s": round(dt, 3),
            "audio_s_per_cpu_s": round(audio_s / cpu, 2)}  # fmt: skip


def separation_note() -> dict:
    from data_prep.separate import SeparationUnavailable, check_available

    try:
        check_available("demucs")
    except SeparationUnavailable as e:
        return {"skipped": str(e)}
    return {"skipped": "demucs is installed but not timed here: its weights are downloaded on first use"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--songs", type=int, default=8)
    p.add_argument("--section-seconds", type=float, default=4.0, help="demo songs are ~5.6x this long")
    p.add_argument("--codec", type=Path, default=None, help="converted codec folder (default: a random one)")
    p.add_argument("--codec-size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    p.add_argument("--aligner", default="pocketsphinx", help="pocketsphinx or a transformers CTC model id/folder")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        t0 = time.perf_counter()
        truth = synth_demo(work / "songs", args.songs, seed=0, section_seconds=args.section_seconds)
        synth_s = time.perf_counter() - t0
        song_audio = sum(t["seconds"] for t in truth)
        codec_dir = args.codec or random_codec(work / f"codec-{args.codec_size}", args.codec_size)
        encode = time_encode(codec_dir, work / "songs", args.device)
        align = time_align(work / "songs", truth, args.aligner, args.device)
        t0 = time.perf_counter()
        summary, code = run_build(
            BuildOptions(
                input=work / "songs",
                out=work / "out",
                codec=codec_dir,
                modes=("cot", "icl-dual", "stage2"),
                device=args.device,
                workers=args.workers,
                progress=False,
            )
        )
        build_s = time.perf_counter() - t0
        assert summary is not None and code == 0, summary
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
            f"{torch.get_num_threads()}, device {args.device}",
            "codec": str(args.codec) if args.codec else f"random {args.codec_size}",
            "synth_demo": {
                "songs": args.songs,
                "song_seconds_mean": round(song_audio / args.songs, 2),
                "wall_s": round(synth_s, 3),
                "songs_per_s": round(args.songs / synth_s, 2),
            },
            "encode_8_codebooks_3_stems": encode,
            "separation": separation_note(),
            "align": align,
            "build": {
                "wall_s": round(build_s, 3),
                "songs_per_s": round(args.songs / build_s, 3),
                "audio_hours_per_hour_mix": round(song_audio / build_s, 2),
                "encode_stage_s": summary["encode_elapsed_s"],
                "workers": args.workers,
            },
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
