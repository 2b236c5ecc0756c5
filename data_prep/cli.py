"""``yue-prep``: data preparation for yue-train.

Subcommands:
  synth-demo      write small synthetic songs (audio stems, lyrics, tags) to try the pipeline on
  build           song folders (audio + lyrics + tags) -> codes -> official manifest -> shards + mixture.json
  align           plain lyrics.txt + vocal stem -> lyrics.aligned.lrc (timed lines and sections) + a CSV of scores;
                  --transcribe: vocal of a song without lyrics -> lyrics.transcribed.lrc (Whisper, sections guessed)
  convert-codec   official X-Codec + Vocos checkpoints -> a converted codec folder (safetensors + config)
  encode          audio files -> X-Codec codes (.npy)
  tokenize        official manifest (JSONL + codes .npy) -> webdataset token shards + summary.json
  inspect         show the documents of a shard folder (decoded text, audio spans) or their ids
  make-tokenizer  write the generated stand-in tokenizer (real id layout, for tests and demos)
  demo            synthetic manifest -> CoT, ICL and stage-2 shards, then inspect them

Options of every subcommand: -q/--quiet (errors and the final summary only, no progress bars),
-v/--verbose (library warnings and logs too).
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

from yue_train.cli.options import options_from
from yue_train.format.sequences import ICL_PROMPT_MODES
from yue_train.training.output import apply_verbosity, note, show_progress


def _tokenize_args(p: argparse.ArgumentParser) -> None:
    from yue_train.data.tokenize import DEFAULT_MAX_DOC_TOKENS, MODES, STAGE2_SOURCES

    p.add_argument("--manifest", type=Path, required=True, help="JSONL manifest in the official YuE format")
    p.add_argument("--out", type=Path, required=True, help="output folder for shards and summary.json")
    p.add_argument(
        "--root", type=Path, default=Path("."), help="folder that relative .npy paths start from (default: cwd)"
    )
    p.add_argument("--tokenizer", default=None, help="YuE tokenizer.model (default: the generated synthetic tokenizer)")
    p.add_argument("--mode", choices=MODES, default="cot", help="document kind (default: cot)")
    p.add_argument(
        "--icl-prompt", choices=ICL_PROMPT_MODES, default="dual", help="ICL reference stream (default: dual)"
    )
    p.add_argument(
        "--stage2-source",
        dest="stage2_sources",
        action="append",
        choices=sorted(STAGE2_SOURCES),
        help="codes used for stage 2 (repeatable; default: mixture = the record's 'codec')",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the ICL prompt draws (default: 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--shard-docs", type=int, default=1000, help="documents per shard (default: 1000)")
    p.add_argument(
        "--max-doc-tokens",
        type=int,
        default=DEFAULT_MAX_DOC_TOKENS,
        help=f"reject a record whose document would be longer (default: {DEFAULT_MAX_DOC_TOKENS:,})",
    )
    p.add_argument("--strict", action="store_true", help="stop (exit 2, nothing kept) at the first rejected record")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_tokenize(args: argparse.Namespace) -> int:
    from yue_train.data.folder_lock import FolderBusyError
    from yue_train.data.manifest import RecordError
    from yue_train.data.tokenize import EXIT_FATAL, TokenizeOptions, run_tokenize

    try:
        opts = options_from(
            args,
            TokenizeOptions,
            stage2_sources=tuple(args.stage2_sources or ["mixture"]),
            progress=not args.no_progress and show_progress(),
        )
        if opts.tokenizer is None and opts.mode != "stage2":  # stage-2 documents hold no text
            from yue_train.tokenizer import STAND_IN_WARNING

            note(f"yue-prep tokenize: {STAND_IN_WARNING}")
        summary, code = run_tokenize(opts)
    except (OSError, ValueError, FolderBusyError) as e:  # usage and I/O errors; a bad record is never one
        kind = "rejected (--strict)" if isinstance(e, RecordError) else "error"
        print(f"yue-prep tokenize: {kind}: {e}", file=sys.stderr)
        return EXIT_FATAL
    for r in summary["rejected"]:
        print(f"  rejected {r['id']} (line {r['line']}): {r['reason']}", file=sys.stderr)
    if "error" in summary:
        print(f"yue-prep tokenize: error: {summary['error']} (see {args.out / 'summary.json'})", file=sys.stderr)
        return code
    print(
        f"{summary['documents_written']} documents ({summary['tokens_total']:,} tokens) in "
        f"{len(summary['shards'])} shards; {summary['records_rejected']} of {summary['records_read']} records "
        f"rejected -> {args.out / 'summary.json'}"
    )
    return code


def cmd_inspect(args: argparse.Namespace) -> int:
    from data_prep.inspect_shards import document_header, ids_lines, render_document
    from yue_train.data.shards import SUMMARY_NAME, iter_documents, read_summary
    from yue_train.tokenizer import load_tokenizer

    try:
        docs = islice(iter_documents(args.path), args.limit) if args.limit else iter_documents(args.path)
        if args.ids:
            for line in ids_lines(docs):
                print(line)
            return 0
        tokenizer_path = args.tokenizer
        summary_file = Path(args.path) / SUMMARY_NAME
        if tokenizer_path is None and summary_file.exists():
            summary = read_summary(args.path)
            tokenizer_path = summary.get("tokenizer_file")
            print(
                f"{args.path}: {summary['documents_written']} documents, {summary['tokens_total']:,} tokens, "
                f"{summary['records_rejected']} records rejected; tokens per role: {summary['tokens_per_role']}"
            )
        tokenizer = load_tokenizer(tokenizer_path)
        for doc in docs:
            print(document_header(doc))
            print(render_document(doc, tokenizer))
    except (FileNotFoundError, ValueError) as e:
        print(f"yue-prep inspect: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from data_prep.align_songs import align_inputs
    from data_prep.build import alignment_line, whisper_choice
    from data_prep.separate import SeparationUnavailable
    from data_prep.transcribe_songs import GUESSED_LINE, SongTranscriber, transcription_line

    try:
        whisper = whisper_choice(args)
        transcriber = SongTranscriber(whisper, args.language, args.device, args.force) if args.transcribe else None
        outcomes = align_inputs(
            args.songs,
            args.aligner,
            args.separate,
            args.device,
            args.force,
            args.min_align_score,
            transcriber,
            args.separation_model,
            args.follow_symlinks,
        )
    except (OSError, ValueError, SeparationUnavailable) as e:
        print(f"yue-prep align: error: {e}", file=sys.stderr)
        return 2
    for o in outcomes:
        if o.info is None:
            print(f"  {o.spec.id}: not {'transcribed' if o.transcribed else 'aligned'}: {o.error}", file=sys.stderr)
        elif o.transcribed:
            print(f"  {o.spec.id}: {transcription_line(o.info)}")
        else:
            print(f"  {o.spec.id}: {alignment_line(o.info)}")
            for line in [*o.info.get("flagged", []), *o.info.get("unmatched", [])]:
                print(f"    check {line}")
    aligned = sum(o.info is not None and not o.transcribed for o in outcomes)
    transcribed = sum(o.info is not None and o.transcribed for o in outcomes)
    if any(o.transcribed and o.info is not None and not o.info["reused"] for o in outcomes):
        print(f"note: {GUESSED_LINE}")
    done = aligned + transcribed
    counts = f"{aligned} aligned, {transcribed} transcribed" if args.transcribe else f"{aligned} aligned"
    print(f"{len(outcomes)} songs: {counts}, {len(outcomes) - done} not")
    return 0 if outcomes and done == len(outcomes) else 3


def cmd_make_tokenizer(args: argparse.Namespace) -> int:
    from yue_train.tokenizer import build_synthetic_tokenizer

    print(build_synthetic_tokenizer(args.out))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic songs -> shards of every kind -> a look at the first CoT document."""
    from yue_train.data.synthetic import write_synthetic_manifest
    from yue_train.data.tokenize import TokenizeOptions, run_tokenize

    manifest = write_synthetic_manifest(args.out / "songs", n_songs=args.songs, seed=args.seed)
    print(f"wrote {args.songs} synthetic songs -> {manifest}")
    for mode, prompt in (("cot", "dual"), ("icl", "dual"), ("icl", "vocal"), ("stage2", "dual")):
        name = f"icl-{prompt}" if mode == "icl" else mode
        opts = TokenizeOptions(
            manifest=manifest,
            out=args.out / "shards" / name,
            root=manifest.parent,
            mode=mode,
            icl_prompt=prompt,
            seed=args.seed,
            overwrite=True,
            progress=False,
        )
        summary, _ = run_tokenize(opts)
        print(f"  {name:10s} {summary['documents_written']} docs, {summary['tokens_total']:,} tokens -> {opts.out}")
    print()
    return cmd_inspect(argparse.Namespace(path=args.out / "shards" / "cot", ids=False, limit=1, tokenizer=None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yue-prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, help_text) in PASSTHROUGH.items():
        sub.add_parser(name, help=help_text, add_help=False)  # listed here; main() hands them their argv

    from data_prep.build import add_aligner_args, add_build_args, add_separation_args, add_transcriber_args, cmd_build
    from data_prep.synth_demo import add_synth_demo_args, cmd_synth_demo

    p = sub.add_parser("synth-demo", help="write synthetic songs (audio, lyrics, tags)")
    add_synth_demo_args(p)
    p.set_defaults(func=cmd_synth_demo)

    p = sub.add_parser("build", help="song folders -> codes -> manifest -> shards")
    add_build_args(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("align", help="plain lyrics.txt + vocal -> lyrics.aligned.lrc beside it (or --transcribe)")
    p.add_argument("songs", nargs="+", type=Path, help="song folders, folders of song folders or songs .jsonl")
    add_aligner_args(p)
    add_transcriber_args(p)
    add_separation_args(p)
    p.add_argument("--device", default="cpu", help="aligner, Whisper and separation device: cpu, cuda:N (default: cpu)")
    p.add_argument(
        "--force",
        action="store_true",
        help="align (transcribe) again over an existing lyrics.aligned.lrc (.transcribed)",
    )
    p.epilog = "Exit codes: 0 every song aligned or transcribed (or its file kept), 3 some songs not, 2 fatal error."
    p.add_argument("--follow-symlinks", action="store_true", help="read song files that symlinks lead to elsewhere")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("tokenize", help="manifest -> token shards", description=cmd_tokenize.__doc__)
    _tokenize_args(p)
    p.epilog = (
        "Exit codes: 0 all records written, 3 some records rejected (listed in summary.json), 2 fatal error "
        "(including: every record rejected)."
    )
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("inspect", help="show the documents of a shard folder")
    p.add_argument("path", help="shard folder (or one .tar)")
    p.add_argument("--ids", action="store_true", help='one JSON object per document: {"id", "mode", "input_ids"}')
    p.add_argument("--limit", type=int, default=0, help="show at most this many documents")
    p.add_argument("--tokenizer", default=None, help="tokenizer for decoding (default: the one the shards used)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("make-tokenizer", help="write the generated stand-in tokenizer")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_make_tokenizer)

    p = sub.add_parser("demo", help="synthetic songs -> shards of every kind, then inspect")
    p.add_argument("--out", type=Path, default=Path("runs/prep-demo"))
    p.add_argument("--songs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


# Subcommands whose parsers live with their code: the rest of the command line goes to them as is.
PASSTHROUGH = {
    "convert-codec": ("yue_train.codec.cli", "convert_codec_main", "official X-Codec/Vocos files -> codec folder"),
    "encode": ("yue_train.codec.cli", "encode_main", "audio files -> X-Codec codes (.npy)"),
}


def _passthrough(name: str, argv: list[str]) -> int:
    import importlib

    module, func, _ = PASSTHROUGH[name]
    if name == "encode" and not show_progress():  # -q: no bar (the codec's parser cannot see the verbosity)
        argv = [*argv, "--no-progress"]
    return getattr(importlib.import_module(module), func)(argv)


def main(argv: list[str] | None = None) -> int:
    argv = apply_verbosity("yue-prep", sys.argv[1:] if argv is None else argv)
    if argv is None:
        return 2
    if argv and argv[0] in PASSTHROUGH:
        return _passthrough(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
