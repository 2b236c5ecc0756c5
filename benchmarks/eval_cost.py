"""CPU cost of each evaluation metric: CPU seconds per minute of audio, on synthetic songs.

  python benchmarks/eval_cost.py                        # 2 songs of 60 s, every metric, one thread
  python benchmarks/eval_cost.py --clap-model DIR --whisper-model DIR   # with real downloaded weights
  python benchmarks/eval_cost.py --seconds 5 --songs 1 --size tiny      # quick check (what the test runs)

The songs are a synthetic sung vowel melody (the vocal stem) over a bass line (the mix). Without real
weights, clap, fad and lyrics_wer load random-weight checkpoints built here with the real architectures
(``--size real``: laion/clap-htsat-unfused and openai/whisper-small; the compute is the same as with
trained weights, except that random Whisper decodes ``--whisper-tokens`` tokens per 30 s window where a
trained one stops at the end of the lyrics). fad scores the set against itself, so its minutes count the
generated and the reference songs. "build s" is the one-off cost of building the metric (loading
weights, embedding a target voice); "CPU s / min" is scoring only. Prints a table, then one JSON line per
metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the synthetic voices and random checkpoints are the tests' own builders

from tests.evaluation.random_models import save_random_clap, save_random_whisper  # noqa: E402
from tests.evaluation.synth import RATE, harmonic_tone, voice  # noqa: E402
from yue_train.evaluation.metrics import SetMetric, SongAudio, SongMetric, build_metric  # noqa: E402

ALL = ["vocal_range", "vocal_activity", "voice_similarity", "clap", "fad", "lyrics_wer"]


def synthetic_song(index: int, seconds: float) -> SongAudio:
    vowels = ("aeiouoiea" * int(seconds / 3.6 + 1))[: max(1, int(seconds / 0.4))]
    vocal = voice(vowels, 50 + index, [0, 2, 4, 7, 5, 4, 2], formant_scale=1.0, tilt=1.2)
    bass = harmonic_tone(np.repeat([36.0, 41.0, 43.0, 36.0], len(vocal) // 4 + 1)[: len(vocal)])
    return SongAudio(id=f"song{index}", sample_rate=RATE, mix=vocal + 0.5 * bass, vocal=vocal,
                     genres="pop female vocal piano", lyrics="la la la hello world " * 4)  # fmt: skip


def options(name: str, args: argparse.Namespace, work: Path) -> dict:
    if name == "voice_similarity":
        import soundfile

        target = work / "target.wav"
        soundfile.write(target, voice("aeiouaeiou", 50, [0, 4, 7], formant_scale=1.0, tilt=1.2), RATE)
        return {"target": str(target)}
    if name in ("clap", "fad"):
        if not args.clap_model:
            args.clap_model = str(save_random_clap(work / "clap", args.size))
        return {"model": args.clap_model}
    if name == "lyrics_wer":
        if not args.whisper_model:
            args.whisper_model = str(save_random_whisper(work / "whisper", args.size))
        return {"model": args.whisper_model, "max_new_tokens": args.whisper_tokens}
    return {}


def measure(name: str, songs: list[SongAudio], args: argparse.Namespace, work: Path) -> dict:
    opts = options(name, args, work)
    start = time.process_time()
    metric = build_metric(name, **opts)
    build = time.process_time() - start
    minutes = sum(s.seconds for s in songs) / 60
    if isinstance(metric, SongMetric):  # warm-up on 2 s (first-call imports and allocations)
        first = songs[0]
        cut = 2 * first.sample_rate
        metric.score(
            SongAudio(id="warm-up", sample_rate=first.sample_rate, mix=first.mix[:cut], vocal=first.vocal[:cut])
        )
    start = time.process_time()
    if isinstance(metric, SetMetric):
        metric.score_set(songs, songs)
        minutes *= 2
    else:
        for song in songs:
            metric.score(song)
    scoring = time.process_time() - start
    weights = opts.get("model", "")
    source = "" if not weights else ("random " + args.size if str(weights).startswith(str(work)) else weights)
    return {"metric": name, "weights": source, "build_s": round(build, 2),
            "cpu_s_per_min": round(scoring / minutes, 3), "minutes": round(minutes, 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each synthetic song")
    parser.add_argument("--songs", type=int, default=2)
    parser.add_argument("--metrics", default=",".join(ALL), help=f"comma-separated, from {','.join(ALL)}")
    parser.add_argument("--size", choices=["real", "tiny"], default="real", help="random checkpoints' size")
    parser.add_argument("--clap-model", default="", help="CLAP weights folder (default: random weights)")
    parser.add_argument("--whisper-model", default="", help="Whisper weights folder (default: random weights)")
    parser.add_argument("--whisper-tokens", type=int, default=100, help="tokens decoded per 30 s window")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    names = [n for n in args.metrics.split(",") if n]
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        parser.error(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    songs = [synthetic_song(i, args.seconds) for i in range(args.songs)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, songs, args, Path(tmp)) for name in names]
    print(
        f"{'metric':<18}{'weights':<26}{'build s':>9}{'CPU s / min':>13}   ({args.threads} thread(s), {len(songs)} x {args.seconds:g} s)"
    )
    for r in rows:
        print(f"{r['metric']:<18}{r['weights'] or '(none)':<26}{r['build_s']:>9.2f}{r['cpu_s_per_min']:>13.3f}")
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
