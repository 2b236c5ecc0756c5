"""``yue-infer``: generation-side tools for YuE.

Subcommands:
  decode    X-Codec codes (.npy) -> audio (16 kHz, or 44.1 kHz through a track's upsampler)
  generate  genre + lyrics -> stage-1 and stage-2 codes -> stems and mixes (16 kHz and 44.1 kHz)
  prompt    show the stage-1 prompts generation will use for a genre + lyrics file (and a reference)

Options of every subcommand: -q/--quiet (errors and the final summary only, no progress bars),
-v/--verbose (library warnings and logs too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from yue_train.cli.options import options_from
from yue_train.generation.threads import DEFAULT_THREADS_HELP, torch_threads
from yue_train.training.output import apply_verbosity, note, show_progress


def prompt_reference(args: argparse.Namespace):
    """(ids, roles) of the reference the flags name: audio encoded with ``--codec``, or codes files; None without."""
    from yue_train.generation.prompts import PromptInputError, load_reference
    from yue_train.generation.reference import audio_reference, reference_ids

    audio = audio_reference(args.ref_audio, args.ref_vocal_audio, args.ref_inst_audio, args.ref_start, args.ref_end)
    if audio is None:
        return load_reference(args.ref_start, args.ref_end, args.ref_codes, args.ref_vocal_codes, args.ref_inst_codes)
    if args.codec is None:
        raise PromptInputError("an audio reference needs --codec (a converted codec folder) to encode it")
    from yue_train.codec.model import YueCodec

    return reference_ids(audio, YueCodec.from_folder(args.codec, load_upsamplers=False))


def cmd_prompt(args: argparse.Namespace) -> int:
    from yue_train.generation.inputs import check_reference_window
    from yue_train.generation.prompts import PromptInputError, build_stage1_prompts, read_text_file
    from yue_train.tokenizer import load_tokenizer

    try:
        check_reference_window(args.ref_start, args.ref_end)
        genres = read_text_file(args.genre_txt, "genre")
        lyrics = read_text_file(args.lyrics_txt, "lyrics")
        reference = prompt_reference(args)
        tokenizer = load_tokenizer(args.tokenizer)
        prompts = build_stage1_prompts(tokenizer, genres, lyrics, reference)
    except (PromptInputError, FileNotFoundError, ValueError) as e:
        print(f"yue-infer prompt: error: {e}", file=sys.stderr)
        return 2
    if args.tokenizer is None:
        from yue_train.tokenizer import STAND_IN_WARNING

        note(f"yue-infer prompt: {STAND_IN_WARNING}")
    if args.ids:
        print(
            json.dumps(
                {
                    "n_sections": len(prompts.sections),
                    "first": prompts.first.ids.tolist(),
                    "next": [p.ids.tolist() for p in prompts.next],
                }
            )
        )
        return 0
    print(f"{len(prompts.sections)} sections; first prompt {len(prompts.first):,} tokens", end="")
    if reference is not None:
        print(f" (reference {len(reference[0]):,} tokens)", end="")
    print(f"; next sections {[len(p) for p in prompts.next]} tokens")
    from data_prep.inspect_shards import render_document

    print("--- first section prompt")
    print(render_document(prompts.first.document(), tokenizer))
    for n, p in enumerate(prompts.next, start=2):
        print(f"--- appended before section {n}")
        print(render_document(p.document(), tokenizer))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from yue_train.generation.generate import run_generate
    from yue_train.generation.inputs import GenerateInputError, GenerateOptions

    try:
        sampling = sampling_from(args)
        torch_threads(args.threads)
        progress = not args.no_progress and show_progress()
        opts = options_from(args, GenerateOptions, adapters=args.adapters or [], sampling=sampling, progress=progress)
        report = run_generate(opts, note)
    except (GenerateInputError, FileNotFoundError, ValueError) as e:
        print(f"yue-infer generate: error: {e}", file=sys.stderr)
        return 2
    t = report["timings"]
    print(
        f"{len(report['songs'])} song(s), {report['music_seconds']:.1f} s of music: stage 1 {t['stage1_s']:.1f} s, "
        f"stage 2 {t['stage2_s']:.1f} s, decode {t['decode_s']:.1f} s -> {args.out / 'report.json'}"
    )
    return 0


def _prompt_args(p: argparse.ArgumentParser) -> None:
    """The flags both ``generate`` and ``prompt`` build the stage-1 prompts from."""
    p.add_argument("--genre-txt", type=Path, required=True, help="genre tags, one line")
    p.add_argument("--lyrics-txt", type=Path, required=True, help="lyrics in [label] sections")
    for name, what in (("ref-audio", "single-track reference audio (encoded with --codec)"),
                       ("ref-vocal-audio", "dual reference: vocal stem audio"),
                       ("ref-inst-audio", "dual reference: accompaniment stem audio"),
                       ("ref-codes", "single-track reference codes .npy (n_codebooks, n_frames)"),
                       ("ref-vocal-codes", "dual reference: vocal codes .npy"),
                       ("ref-inst-codes", "dual reference: instrumental codes .npy")):  # fmt: skip
        p.add_argument(f"--{name}", type=Path, help=what)
    p.add_argument("--ref-start", type=float, default=0.0, help="reference start, seconds (default 0)")
    p.add_argument("--ref-end", type=float, default=30.0, help="reference end, seconds (default 30)")


def _tokenizer_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", default=None, help="YuE tokenizer.model (default: generated synthetic tokenizer)")


def add_generation_flags(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    required: bool = True,
    out_help: str = "output folder (new or empty, unless --overwrite)",
) -> None:
    """The models, sampling and output flags of ``yue-infer generate``, which ``yue-eval --generate`` shares;
    each flag's ``dest`` is a field of the options dataclass it fills (``options_from``). ``required``: the
    models and ``--out`` must be given (``yue-eval`` checks them only with ``--generate``)."""
    _tokenizer_arg(p)
    p.add_argument(
        "--stage1-model", required=required, help="stage-1 model folder or hub id (m-a-p/YuE-s1-7B-anneal-en-cot)"
    )
    p.add_argument("--stage2-model", required=required, help="stage-2 model folder or hub id (m-a-p/YuE-s2-1B-general)")
    p.add_argument(
        "--codec", type=Path, help="converted codec folder (yue-prep convert-codec); without it only codes are written"
    )
    p.add_argument("--out", type=Path, required=required, help=out_help)
    p.add_argument("--overwrite", action="store_true", help="replace the songs an earlier run wrote into --out")
    p.add_argument("--adapter", dest="adapters", action="append", help="LoRA adapter folder for stage 1 (repeatable)")
    p.add_argument(
        "--active-adapter",
        dest="adapter",
        default=None,
        help="which --adapter to use (a0, a1, ... or its path; default a0)",
    )
    p.add_argument("--n-sections", type=int, default=None, help="generate only the first N sections")
    p.add_argument("--seed", type=int, default=42, help="seed of the first song; the next ones count up")
    p.add_argument("--top-p", type=float, default=0.93)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--guidance-first", type=float, default=1.5, help="classifier-free guidance, first section")
    p.add_argument("--guidance-rest", type=float, default=1.2, help="classifier-free guidance, later sections")
    p.add_argument("--max-new-tokens", type=int, default=3000, help="per section (100 tokens = 1 s)")
    p.add_argument("--min-new-tokens", type=int, default=100, help="<EOA> is blocked before this many tokens")
    p.add_argument("--greedy", action="store_true", help="greedy stage 1 (stage 2 is always greedy)")
    p.add_argument("--stage2-batch-size", type=int, default=16)
    p.add_argument(
        "--static-cache", action="store_true", help="stage 1: a static KV cache sized for the section (fixed shapes)"
    )
    p.add_argument(
        "--compile", action="store_true", help="stage 1: per-token steps under torch.compile (CUDA graphs on a GPU)"
    )
    p.add_argument("--threads", type=int, default=None, help=f"CPU threads for torch (default: {DEFAULT_THREADS_HELP})")
    p.add_argument("--device", default="auto")


def sampling_from(args: argparse.Namespace):
    """The sampling flags of :func:`add_generation_flags` as a SamplingConfig (``--min-new-tokens`` capped at
    ``--max-new-tokens``)."""
    from yue_train.generation.sampling import SamplingConfig

    return options_from(args, SamplingConfig, min_new_tokens=min(args.min_new_tokens, args.max_new_tokens))


def _generate_args(p: argparse.ArgumentParser) -> None:
    _prompt_args(p)
    add_generation_flags(p)
    p.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="generate even when --tokenizer is not the one the stage-1 model records (a warning instead)",
    )
    p.add_argument(
        "--continue-from",
        type=Path,
        help="a song folder of an earlier run: keep its codes and append the lyrics' sections to it",
    )
    p.add_argument("--n-songs", type=int, default=1, help="songs to generate (seeds seed, seed+1, ...)")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yue-infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("decode", help="codes -> audio", add_help=False)
    p = sub.add_parser("generate", help="generate songs (codes, stems, mixes)")
    _generate_args(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("prompt", help="show the stage-1 generation prompts")
    _prompt_args(p)
    _tokenizer_arg(p)
    p.add_argument("--codec", type=Path, help="converted codec folder, for audio references")
    p.add_argument("--ids", action="store_true", help='print {"n_sections", "first", "next"} as JSON')
    p.set_defaults(func=cmd_prompt)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = apply_verbosity("yue-infer", sys.argv[1:] if argv is None else argv)
    if argv is None:
        return 2
    if argv and argv[0] == "decode":  # its parser lives with the codec
        from yue_train.codec.cli import decode_main

        return decode_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
