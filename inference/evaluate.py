"""``yue-eval``: score generated songs with music metrics; write eval.json and an HTML report.

  yue-eval SONGS_DIR [--reference DIR] [--metrics a,b] [--out DIR] [--wandb]
      SONGS_DIR: the output folder of `yue-infer generate` (report.json + songNN/), or a folder of audio
      files. --reference: your training songs or a held-out set, for the set metrics (fad): audio files or
      song folders (mix.*, vocals.*, instrumental.*).
  yue-eval --generate --stage1-model M --prompts prompts.jsonl --out DIR [--stage2-model M2 --codec C]
      generates one song per prompt first (the code yue-infer uses), then scores them. The prompt set is a
      JSONL of {"id", "genres", "lyrics", "reference"?} ("reference": target-voice audio, for voice_similarity).

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

from yue_train.training.output import apply_verbosity, note, show_progress


class EvalUsageError(ValueError):
    """Arguments yue-eval cannot run with; one line saying what to give."""


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["vocal_range.min_note_ms=40", ...]`` -> ``{"vocal_range": {"min_note_s": 0.04}}`` (values YAML)."""
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


def generate_songs(args: argparse.Namespace, progress: bool) -> Path:
    """``--generate``: one song per prompt of ``--prompts`` into ``--out``; returns ``--out``."""
    from yue_train.codec.folder import check_codec_folder
    from yue_train.devices import resolve_device
    from yue_train.generation.inputs import check_model_ref, check_models
    from yue_train.generation.loading import load_codec, load_lm, load_stage2
    from yue_train.generation.sampling import SamplingConfig
    from yue_train.generation.song_folder import SongFolderError, check_out, clear_earlier
    from yue_train.generation.songs import generate_song_set, read_prompt_set
    from yue_train.tokenizer import load_tokenizer

    if args.stage1_model is None or args.prompts is None or args.out is None:
        raise EvalUsageError("--generate needs --stage1-model, --prompts and --out")
    if args.codec is not None and args.stage2_model is None:
        raise EvalUsageError("--codec needs --stage2-model: audio is decoded from stage 2's 8 codebooks")
    if args.codec is not None:
        check_codec_folder(args.codec, "--codec", EvalUsageError)
    try:
        check_out(args.out, args.overwrite)
    except SongFolderError as e:
        raise EvalUsageError(str(e)) from None
    prompts = read_prompt_set(args.prompts)
    tokenizer = load_tokenizer(args.tokenizer)
    if args.stage2_model is not None:
        check_models(tokenizer, args.stage1_model, args.stage2_model)
    else:
        check_model_ref("--stage1-model", args.stage1_model)
    sampling = SamplingConfig(
        max_new_tokens=args.max_new_tokens, min_new_tokens=min(args.min_new_tokens, args.max_new_tokens)
    )
    device = resolve_device(args.device)
    stage1 = load_lm(args.stage1_model, device, args.adapter or None)
    stage2 = load_stage2(args.stage2_model, device) if args.stage2_model else None
    codec = load_codec(args.codec, device)
    if args.overwrite:
        clear_earlier(args.out)
    report = generate_song_set(
        stage1, tokenizer, prompts, sampling, args.out, seed=args.seed, stage2=stage2, codec=codec, progress=progress
    )
    if codec is None:
        note("yue-eval: no --codec (and --stage2-model): the songs are codes only; audio metrics are skipped")
    note(f"yue-eval: {len(report['songs'])} song(s), {report['music_seconds']:.1f} s of music -> {args.out}")
    return args.out


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


def run(args: argparse.Namespace) -> int:
    from yue_train.evaluation.metrics import available
    from yue_train.evaluation.run import evaluate_folder
    from yue_train.evaluation.scoring import parse_metrics

    if args.list_metrics:
        print("\n".join(available()))
        return 0
    progress = not args.no_progress and show_progress()
    metrics = parse_metrics(args.metrics)  # names and options checked before anything is generated or read
    options = parse_options(args.option)
    unknown = sorted(set(options) - set(metrics))
    if unknown:
        raise EvalUsageError(f"--option for {unknown[0]!r}, which is not among the metrics ({','.join(metrics)})")
    if args.generate:
        if args.songs_dir is not None:
            raise EvalUsageError("give SONGS_DIR or --generate, not both")
        songs_dir = generate_songs(args, progress)
    elif args.songs_dir is None:
        raise EvalUsageError("give SONGS_DIR (a yue-infer generate output or a folder of audio) or --generate")
    else:
        songs_dir = args.songs_dir
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
    p.add_argument("--out", type=Path, help="where eval.json and report.html go (default: SONGS_DIR)")
    p.add_argument("--title", default="yue-eval", help="the report's title")
    p.add_argument("--wandb", nargs="?", const="offline", choices=("offline", "online"), help="log to W&B")
    p.add_argument("--wandb-project", default="yue-train", help="W&B project (default yue-train)")
    p.add_argument("--list-metrics", action="store_true", help="print the registered metric names and exit")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("--generate: generate one song per prompt first, then score them")
    g.add_argument("--generate", action="store_true", help="generate into --out from --prompts")
    g.add_argument("--prompts", type=Path, help='prompt set JSONL: {"id", "genres", "lyrics", "reference"?}')
    g.add_argument("--stage1-model", help="stage-1 model folder or hub id")
    g.add_argument("--adapter", action="append", help="LoRA adapter folder for stage 1")
    g.add_argument("--stage2-model", help="stage-2 model folder or hub id (needed for audio)")
    g.add_argument("--codec", type=Path, help="converted codec folder (yue-prep convert-codec): audio")
    g.add_argument("--tokenizer", default=None, help="YuE tokenizer.model (default: the generated stand-in)")
    g.add_argument("--max-new-tokens", type=int, default=3000, help="per section (100 tokens = 1 s)")
    g.add_argument("--min-new-tokens", type=int, default=100, help="<EOA> is blocked before this many tokens")
    g.add_argument("--seed", type=int, default=42, help="seed of the first song; the next ones count up")
    g.add_argument("--device", default="auto")
    g.add_argument("--overwrite", action="store_true", help="replace the songs an earlier run wrote into --out")
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
