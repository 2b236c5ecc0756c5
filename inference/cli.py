"""``yue-infer``: generation-side tools for YuE.

Subcommands:
  prompt   show the stage-1 prompts generation will use for a genre + lyrics file (and a reference)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_prompt(args: argparse.Namespace) -> int:
    from inference.prompts import PromptInputError, build_stage1_prompts, load_reference, read_text_file
    from yue_train.tokenizer import load_tokenizer

    try:
        genres = read_text_file(args.genre_txt, "genre")
        lyrics = read_text_file(args.lyrics_txt, "lyrics")
        reference = load_reference(
            args.ref_start, args.ref_end, args.ref_codes, args.ref_vocal_codes, args.ref_inst_codes
        )
        tokenizer = load_tokenizer(args.tokenizer)
        prompts = build_stage1_prompts(tokenizer, genres, lyrics, reference)
    except (PromptInputError, FileNotFoundError, ValueError) as e:
        print(f"yue-infer prompt: error: {e}", file=sys.stderr)
        return 2
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yue-infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("prompt", help="show the stage-1 generation prompts")
    p.add_argument("--genre-txt", type=Path, required=True, help="genre tags, one line")
    p.add_argument("--lyrics-txt", type=Path, required=True, help="lyrics in [label] sections")
    p.add_argument("--tokenizer", default=None, help="YuE tokenizer.model (default: generated synthetic tokenizer)")
    p.add_argument("--ref-codes", type=Path, help="single-track reference codes .npy (n_codebooks, n_frames)")
    p.add_argument("--ref-vocal-codes", type=Path, help="dual reference: vocal codes .npy")
    p.add_argument("--ref-inst-codes", type=Path, help="dual reference: instrumental codes .npy")
    p.add_argument("--ref-start", type=float, default=0.0, help="reference start, seconds (default 0)")
    p.add_argument("--ref-end", type=float, default=30.0, help="reference end, seconds (default 30)")
    p.add_argument("--ids", action="store_true", help='print {"n_sections", "first", "next"} as JSON')
    p.set_defaults(func=cmd_prompt)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
