"""``yue-eval``: score generated songs with music metrics; write eval.json and an HTML report.

  yue-eval SONGS_DIR [--reference DIR] [--metrics a,b] [--out DIR] [--wandb]
      SONGS_DIR: the output folder of `yue-infer generate` (report.json + songNN/), or a folder of audio
      files and song folders as yue-prep build reads them (mix.* or song.*, vocals.*, instrumental.*, lyrics
      in any form build reads). --reference: your training songs or a held-out set, for the set metrics (fad).
  yue-eval --generate --stage1-model M --prompts prompts.jsonl --out DIR [--stage2-model M2 --codec C]
      generates one song per prompt first (the code and the flags of yue-infer generate), then scores them.
      The prompt set is a JSONL of {"id", "genres", "lyrics", "reference"?} ("reference": target-voice
      audio, for voice_similarity).

Metrics (--metrics, comma-separated; default: those that need no downloaded weights): see
`yue-eval --list-metrics`. A metric's options: --option vocal_range.min_note_ms=40 (repeatable; values
are YAML). Output (--out, default SONGS_DIR): eval.json (per song and aggregated, with the config and
package versions) and report.html (table, players, spectrograms, pitch contours, lyrics; copy the folder
to share it). --wandb logs the same to W&B (offline unless --wandb online).
Options: -q/--quiet (errors and the final summary only, no progress bars), -v/--verbose.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from inference.cli import add_generation_flags, sampling_from
from yue_train.cli.options import options_from
from yue_train.training.output import apply_verbosity, note, show_progress


class EvalUsageError(ValueError):
    """Arguments yue-eval cannot run with; one line saying what to give."""


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["vocal_range.min_note_ms=40", ...]`` -> ``{"vocal_range": {"min_note_ms": 40}}`` (values YAML)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        metric, dot, name = key.partition(".")
        if not eq or not dot or not metric or not name:
            raise EvalUsageError(f"--option {item!r}: write METRIC.KEY=VALUE, e.g. vocal_range.min_note_ms=40")
        try:
            options.setdefault(metric, {})[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise EvalUsageError(f"--option {item!r}: the value is not valid YAML") from None
    return options


def open_wandb(mode: str, project: str, folder: Path, config: dict[str, Any]) -> Any:
    from yue_train.training.logger import check_wandb_login, wandb_mode

    wcfg = SimpleNamespace(enabled=True, mode=mode)
    try:
        check_wandb_login(wcfg)
    except ValueError as e:
        raise EvalUsageError(str(e).replace("logging.wandb.mode=online", "--wandb online")) from None
    import wandb

    folder.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=project, dir=str(folder), mode=wandb_mode(wcfg), config=config, job_type="eval")


def songs_to_score(args: argparse.Namespace, progress: bool) -> Path:
    """SONGS_DIR, or the folder ``--generate`` fills."""
    from yue_train.evaluation.generate import generate_prompt_set
    from yue_train.generation.threads import torch_threads

    if not args.generate:
        if args.songs_dir is None:
            raise EvalUsageError("give SONGS_DIR (a yue-infer generate output or a folder of audio) or --generate")
        return args.songs_dir
    if args.songs_dir is not None:
        raise EvalUsageError("give SONGS_DIR or --generate, not both")
    torch_threads(args.threads)
    return generate_prompt_set(prompt_set_options(args, progress), note)


def prompt_set_options(args: argparse.Namespace, progress: bool):
    from yue_train.evaluation.generate import PromptSetOptions

    sampling = sampling_from(args)
    return options_from(args, PromptSetOptions, adapters=args.adapters or [], sampling=sampling, progress=progress)


def run(args: argparse.Namespace) -> int:
    from yue_train.evaluation.metrics import available
    from yue_train.evaluation.run import evaluate_folder
    from yue_train.evaluation.scoring import check_options, parse_metrics
    from yue_train.evaluation.songs import NO_VOCAL_STEM

    if args.list_metrics:
        print("\n".join(available()))
        return 0
    progress = not args.no_progress and show_progress()
    metrics = parse_metrics(args.metrics)  # names and options checked before anything is generated or read
    options = parse_options(args.option)
    check_options(metrics, options, "--option")
    songs_dir = songs_to_score(args, progress)
    out = args.out or songs_dir
    run_ = None
    if args.wandb is not None:
        run_ = open_wandb(args.wandb, args.wandb_project, Path(out), {"songs": str(songs_dir), "metrics": metrics})
    try:
        result = evaluate_folder(
            songs_dir, out, metrics, options, args.reference, follow_symlinks=args.follow_symlinks,
            title=args.title, progress=progress, wandb_run=run_,
        )  # fmt: skip
    finally:
        if run_ is not None:
            run_.finish()
    ev = result.evaluation
    print(f"{len(ev.songs)} song(s) scored with {', '.join(ev.metrics)} in {ev.seconds:.1f} s -> {result.eval_json}")
    mix_only = [s.audio.id for s in ev.songs if s.vocal_source == "mix"]
    if mix_only:
        print(
            f"  {len(mix_only)} song(s) ({', '.join(mix_only[:3])}{', ...' if len(mix_only) > 3 else ''}) with {NO_VOCAL_STEM}"
        )
    for metric, why in ev.skipped.items():
        print(f"  {metric} skipped: {why}")
    for key, value in ev.aggregate.items():
        print(f"  {key} = {value:.4g}")
    print(f"report: {result.report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yue-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("songs_dir", nargs="?", type=Path, metavar="SONGS_DIR", help="yue-infer output or audio folder")
    p.add_argument("--reference", type=Path, help="folder of reference audio for the set metrics (e.g. fad)")
    p.add_argument(
        "--follow-symlinks", action="store_true",
        help="read (and copy into the report) files that symlinks in the song folders lead to outside them",
    )  # fmt: skip
    p.add_argument("--metrics", help="comma-separated metric names (default: those needing no downloads)")
    p.add_argument("--option", action="append", metavar="METRIC.KEY=VALUE", help="a metric's option (repeatable)")
    p.add_argument("--title", default="yue-eval", help="the report's title")
    p.add_argument("--wandb", nargs="?", const="offline", choices=("offline", "online"), help="log to W&B")
    p.add_argument("--wandb-project", default="yue-train", help="W&B project (default yue-train)")
    p.add_argument("--list-metrics", action="store_true", help="print the registered metric names and exit")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("--generate: generate one song per prompt first (yue-infer generate's flags), then score")
    g.add_argument("--generate", action="store_true", help="generate into --out from --prompts")
    g.add_argument("--prompts", type=Path, help='prompt set JSONL: {"id", "genres", "lyrics", "reference"?}')
    add_generation_flags(
        g, required=False, out_help="where the songs (--generate), eval.json and report.html go (default: SONGS_DIR)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = apply_verbosity("yue-eval", sys.argv[1:] if argv is None else argv)
    if argv is None:
        return 2
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    # EvalUsageError, SongLoadError, MetricError, PromptInputError, AudioError and the generation checks'
    # GenerateInputError are ValueErrors: each one line saying what to do.
    except (ValueError, FileNotFoundError) as e:
        print(f"yue-eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
