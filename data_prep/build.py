"""``yue-prep build``: a folder of songs -> codes -> the official manifest -> token shards + a data mixture.

The songs come from ``--input`` (song folders or a songs ``.jsonl``, :mod:`data_prep.songs`) or from a
Hugging Face audio dataset, ``--hf-dataset`` (:mod:`data_prep.hf_source`; rows are written as song files
into ``--out/.hf-rows/`` while they are encoded).

Layout of ``--out``::

    codes/<id>/<id>.npy, <id>.Vocals.npy, <id>.Instrumental.npy   (8, frames) int16 X-Codec codes
    codes/<id>/<id>.codes.json    input hash, lengths; written last, so its presence means "codes complete"
    manifest.jsonl                the official YuE manifest (paths relative to --out)
    shards/<mode>/                ``yue-prep tokenize`` output per mode (cot, icl-dual, ..., stage2)
    mixture.json                  which shard sets exist and how many documents and tokens each holds
    build_summary.json            per-song outcome: built, reused or rejected (with the reason), tag warnings

Each song is encoded once with 8 codebooks (stage 2 reads all 8, stage 1 row 0: residual quantisation makes
the first codebook the same whatever follows). Codes are keyed by a hash of the audio bytes and the codec, so
a re-run reuses them; lyrics and tags are re-read every run (cheap) and only change the manifest. Shards are
re-tokenized only when the manifest, the code files' bytes or the shard options changed.

Scale-out: ``--workers N`` encodes in N processes; under ``torchrun`` every rank takes every world-th song,
the outcomes are gathered over gloo and rank 0 alone writes the manifest, shards and summaries in input
order -- so the result is the same for any number of ranks and workers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yue_train
from data_prep.encode_songs import SongResult, encode_songs
from data_prep.hf_source import hf_song_specs, parse_columns
from data_prep.mixture import tokenize_modes, write_mixture
from data_prep.separate import DEFAULT_MODEL as DEFAULT_SEPARATION_MODEL
from data_prep.separate import METHODS as SEPARATION_METHODS
from data_prep.separate import SeparationUnavailable, check_available, model_identity
from data_prep.songs import discover, mark_duplicates
from data_prep.transcribe_songs import DEFAULT_WHISPER, GUESSED_LINE, transcription_line
from yue_train.cli.options import add_flags, flag, options_from
from yue_train.codec.folder import codec_fingerprint
from yue_train.data.folder_lock import FolderBusyError, FolderLock
from yue_train.data.manifest import DEFAULT_MAX_DOC_TOKENS
from yue_train.data.shards import TMP_SUFFIX, write_json_atomic
from yue_train.data.tags import TopTags, load_top_tags
from yue_train.lyrics.backends import DEFAULT_CTC_MODEL, MIN_SCORE, POCKETSPHINX
from yue_train.tokenizer import load_tokenizer
from yue_train.training.output import note, show_progress

MODES = ("cot", "icl-dual", "icl-vocal", "icl-inst", "icl-mixture", "stage2")
# Short names accepted by --modes: ``icl`` is the ICL set with the default (dual-track) reference prompt,
# as ``yue-prep tokenize --mode icl`` writes it.
MODE_ALIASES = {"icl": "icl-dual"}
EXIT_OK, EXIT_FATAL, EXIT_REJECTED = 0, 2, 3
BUILD_SUMMARY_NAME = "build_summary.json"
HF_SCRATCH = ".hf-rows"  # under --out: audio of --hf-dataset rows while they are encoded


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


@dataclass
class BuildOptions:
    out: Path = flag(help="output folder (codes, manifest, shards, mixture)")
    codec: Path = flag(help="converted codec folder (yue-prep convert-codec)")
    input: Path | None = flag(None, "a song folder, a folder of song folders, or a songs .jsonl")
    hf_dataset: str | None = flag(
        None, "instead of --input: a Hugging Face audio dataset (hub id, save_to_disk folder or data files folder)"
    )
    hf_split: str = flag("train", "the dataset split to read (default: train)")
    hf_columns: dict[str, str] = flag(
        {},
        "KEY=COLUMN,... for mix, vocals, instrumental, lyrics, tags, id (default: same-named columns; mix also "
        "'audio')",
        type=str,
        default="",
    )
    modes: tuple[str, ...] = flag(
        MODES,
        f"comma-separated shard sets to write; icl = icl-dual (default: all: {','.join(MODES)})",
        type=_comma_list,
    )
    stage2_sources: tuple[str, ...] = flag(
        ("vocal", "inst"),
        "tracks for stage-2 documents (repeatable; default: vocal and inst, the tracks stage 2 decodes)",
        flag="--stage2-source",
        action="append",
        choices=("vocal", "inst", "mixture"),
        default=None,
    )
    tokenizer: str | None = flag(None, "YuE tokenizer.model (default: the generated stand-in)")
    tags_file: Path | None = flag(None, "YuE's top_200_tags.json: warn about unusual tags")
    separate: str = flag("off", "derive missing stems from the mix (default: off)", choices=SEPARATION_METHODS)
    separation_model: str = flag(
        DEFAULT_SEPARATION_MODEL,
        f"--separate's demucs model: a name, fetched by demucs on first use, or a folder with demucs.json and "
        f"model.safetensors (default: {DEFAULT_SEPARATION_MODEL})",
    )
    align: bool = flag(
        False,
        "align plain lyrics.txt to the vocal into lyrics.aligned.lrc beside it (an existing one is used as is)",
    )
    aligner: str = flag(
        DEFAULT_CTC_MODEL,
        f"{POCKETSPHINX} (English, offline) or a transformers CTC model id or folder, fetched on first use "
        f"(default: {DEFAULT_CTC_MODEL})",
    )
    min_align_score: float = flag(
        MIN_SCORE, f"reject a song aligned with a lower mean line score (default: {MIN_SCORE})"
    )
    transcribe: bool = flag(
        False,
        "transcribe the vocal of song folders without lyrics with Whisper into lyrics.transcribed.lrc (timed "
        "lines; [verse]/[chorus] guessed from pauses and repeated lines; an existing one is used as is)",
    )
    whisper: str = flag(
        DEFAULT_WHISPER,
        f"Whisper weights for --transcribe: hub id or folder, fetched on first use (default: {DEFAULT_WHISPER})",
        default=None,
    )
    language: str | None = flag(None, "the language --transcribe hears, e.g. en, zh (default: detected by Whisper)")
    workers: int = flag(1, "encoding/tokenizing processes per rank (default: 1)")
    threads: int = flag(0, "torch threads per encoding process (default: cores shared out)")
    device: str = flag("auto", "codec device: auto (cuda:LOCAL_RANK if present), cpu, cuda:N")
    batch_size: int = flag(4, "equal-length audio windows per codec forward (default: 4)")
    shard_docs: int = flag(1000, "documents per shard (default: 1000)")
    max_doc_tokens: int = flag(
        DEFAULT_MAX_DOC_TOKENS, f"reject a song whose document would be longer (default: {DEFAULT_MAX_DOC_TOKENS:,})"
    )
    seed: int = flag(0, "seed of the ICL prompt draws (default: 0)")
    force: bool = flag(False, "re-encode and re-tokenize everything")
    progress: bool = flag(True, "no progress bars", flag="--no-progress", action="store_false")
    follow_symlinks: bool = flag(
        False, "read song folders and files that symlinks (or song.json paths) lead to outside --input"
    )

    def __post_init__(self) -> None:
        if (self.input is None) == (self.hf_dataset is None):
            raise ValueError("give the songs as --input (folders or .jsonl) or as --hf-dataset, one of the two")
        self.input = None if self.input is None else Path(self.input)
        self.out, self.codec = Path(self.out), Path(self.codec)
        bad = [m for m in self.modes if m not in MODES and m not in MODE_ALIASES]
        if bad or not self.modes:
            raise ValueError(f"unknown mode(s) {bad or '(none)'}; choose from {', '.join(MODES)} (icl = icl-dual)")
        self.modes = tuple(dict.fromkeys(MODE_ALIASES.get(m, m) for m in self.modes))
        if self.separate not in SEPARATION_METHODS:
            raise ValueError(f"--separate must be one of {', '.join(SEPARATION_METHODS)}")
        if self.max_doc_tokens < 1:
            raise ValueError(f"--max-doc-tokens must be >= 1, got {self.max_doc_tokens}")
        if self.transcribe and self.hf_dataset is not None:
            raise ValueError(
                "--transcribe writes lyrics.transcribed.lrc into song folders, which --hf-dataset rows are not: "
                "give the songs as --input folders, or lyrics in the dataset"
            )
        if self.workers < 1 or self.batch_size < 1 or self.threads < 0:
            raise ValueError("--workers and --batch-size must be >= 1, --threads >= 0")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1


def dist_from_env() -> Dist:
    """torchrun's environment; a plain run is rank 0 of 1."""
    names = {"RANK": 0, "WORLD_SIZE": 1, "LOCAL_RANK": 0, "LOCAL_WORLD_SIZE": 1}
    return Dist(*(int(os.environ.get(name, default)) for name, default in names.items()))


@contextlib.contextmanager
def _gloo_group(d: Dist) -> Iterator[None]:
    """A gloo process group around the encoding stage under torchrun (gloo carries Python objects on CPU and GPU
    machines alike); every rank has finished with it before any rank tears it down."""
    if not d.active:
        yield
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _gather(results: list[SongResult], d: Dist) -> list[SongResult]:
    """Every rank's outcomes, on every rank."""
    if not d.active:
        return results
    import torch.distributed as dist

    everyone: list[list[SongResult] | None] = [None] * d.world
    dist.all_gather_object(everyone, results)
    return [r for part in everyone for r in (part or [])]


def write_manifest(path: Path, records: list[dict[str, Any]], codes_hashes: list[str]) -> str:
    """Write the manifest; returns the key of what shards are made from: the manifest text and the bytes of
    every code file it names (re-encoded codes that differ must re-tokenize even if the manifest does not)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return hashlib.sha256((text + "\n".join(codes_hashes)).encode("utf-8")).hexdigest()


def run_build(opts: BuildOptions, d: Dist | None = None) -> tuple[dict[str, Any] | None, int]:
    """Build; returns (summary, exit code) on rank 0 and (None, 0) on other ranks. One build at a time may
    write ``opts.out``: rank 0 holds its lock (FolderBusyError for a second build; torchrun then stops the
    other ranks)."""
    d = d or dist_from_env()
    started = time.perf_counter()
    check_available(opts.separate)  # before any work: asking for separation without demucs is fatal
    if opts.separate != "off":
        model_identity(opts.separation_model)  # a local model folder that cannot be read is fatal too
    top = load_top_tags(opts.tags_file) if opts.tags_file is not None else None
    if opts.tokenizer is not None:
        load_tokenizer(opts.tokenizer)  # before any encoding: a bad tokenizer file is one line, not hours later
    codec_fp = codec_fingerprint(opts.codec)
    if opts.out.exists() and not opts.out.is_dir():
        raise FileExistsError(f"--out {opts.out} exists and is not a folder")
    opts.out.mkdir(parents=True, exist_ok=True)
    with FolderLock(opts.out, "output folder") if d.rank == 0 else contextlib.nullcontext():
        return _build(opts, d, started, top, codec_fp)


def _build(
    opts: BuildOptions, d: Dist, started: float, top: TopTags | None, codec_fp: str
) -> tuple[dict[str, Any] | None, int]:
    scratch = opts.out / HF_SCRATCH / f"rank{d.rank}"
    if opts.hf_dataset is not None:
        shutil.rmtree(scratch, ignore_errors=True)
        specs = hf_song_specs(opts.hf_dataset, opts.hf_columns, scratch, opts.hf_split, lambda i: i % d.world == d.rank)
    else:
        assert opts.input is not None
        specs = discover(opts.input, exclude=opts.out, transcribe=opts.transcribe, follow_symlinks=opts.follow_symlinks)
    mark_duplicates(specs)

    with _gloo_group(d):
        try:
            results = _gather(encode_songs(specs[d.rank :: d.world], opts, codec_fp, top, d), d)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(OSError):  # still in use by another rank: that rank removes it
                scratch.parent.rmdir()
    if d.rank != 0:
        return None, EXIT_OK
    encode_s = time.perf_counter() - started
    results.sort(key=lambda r: r.index)

    records = [r.record for r in results if r.record is not None]
    rejected = [{"id": r.id, "source": r.source, "reason": r.reason} for r in results if r.status == "rejected"]
    audio_s = sum(r.audio_seconds for r in results)
    summary: dict[str, Any] = {
        "yue_train_version": yue_train.__version__,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items() if k != "progress"},
        "world_size": d.world,
        "songs_found": len(results),
        "songs_encoded": sum(r.status == "encoded" for r in results),
        "songs_reused": sum(r.status == "reused" for r in results),
        "songs_rejected": len(rejected),
        "rejected": rejected,
        "tag_warnings": {r.id: r.warnings for r in results if r.warnings},
        "alignment": {r.id: r.alignment for r in results if r.alignment is not None},
        "transcription": {r.id: r.transcription for r in results if r.transcription is not None},
        "tag_check": "on" if top is not None else "off (pass --tags-file top_200_tags.json)",
        "audio_hours_encoded": round(audio_s / 3600, 6),
        "encode_elapsed_s": round(encode_s, 3),
        "songs_per_s": round(len(results) / encode_s, 3) if encode_s else None,
        "audio_hours_per_hour": round(audio_s / encode_s, 3) if encode_s else None,
    }
    if not records:
        summary["error"] = "no song could be built"
        write_json_atomic(opts.out / BUILD_SUMMARY_NAME, summary)
        return summary, EXIT_FATAL
    manifest = opts.out / "manifest.jsonl"
    manifest_sha = write_manifest(manifest, records, [r.codes_sha256 for r in results if r.record is not None])
    mixture = write_mixture(opts, tokenize_modes(opts, manifest, manifest_sha, codec_fp), manifest_sha)
    summary["shards"] = {
        e["name"]: {
            "documents": e["documents"],
            "tokens": e["tokens"],
            "records_rejected": e["records_rejected"],
            "reused": e["reused"],
        }
        for e in mixture["datasets"]
    }
    summary["elapsed_s"] = round(time.perf_counter() - started, 3)
    empty = [e["name"] for e in mixture["datasets"] if not e["documents"]]
    if empty:
        summary["error"] = f"no document in shard set(s) {', '.join(empty)}: every record was rejected"
    write_json_atomic(opts.out / BUILD_SUMMARY_NAME, summary)
    if empty:
        return summary, EXIT_FATAL
    tokenize_rejects = any(e["records_rejected"] for e in mixture["datasets"])
    return summary, EXIT_REJECTED if rejected or tokenize_rejects else EXIT_OK


def alignment_line(info: dict[str, Any]) -> str:
    """One line on a song's lyrics alignment for the terminal."""
    if "score" not in info:
        return f"{info['lrc']} used as it is"
    flagged = len(info["flagged"]) + len(info["unmatched"])
    return f"aligned, confidence {info['score']:.2f}, {flagged} flagged -> {info['lrc']}"


def add_aligner_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, BuildOptions, ("aligner", "min_align_score"))


def add_separation_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, BuildOptions, ("separate", "separation_model"))


def add_transcriber_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, BuildOptions, ("transcribe", "whisper", "language"))


def whisper_choice(args: argparse.Namespace) -> str:
    """The Whisper weights of ``--transcribe``; ValueError for --whisper or --language without --transcribe."""
    if not args.transcribe and (args.whisper is not None or args.language is not None):
        raise ValueError("--whisper and --language set up --transcribe: add --transcribe, or leave them out")
    return args.whisper or DEFAULT_WHISPER


def add_build_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, BuildOptions)


def cmd_build(args: argparse.Namespace) -> int:
    try:
        opts = options_from(
            args,
            BuildOptions,
            hf_columns=parse_columns(args.hf_columns),
            stage2_sources=tuple(args.stage2_sources or ("vocal", "inst")),
            progress=args.progress and show_progress(),
            whisper=whisper_choice(args),
        )
        summary, code = run_build(opts)
    except (OSError, ValueError, SeparationUnavailable, FolderBusyError) as e:  # usage and I/O errors
        print(f"yue-prep build: error: {e}", file=sys.stderr)
        return EXIT_FATAL
    if summary is None:  # a rank other than 0: rank 0 reports
        return code
    if args.tokenizer is None and any(m != "stage2" for m in opts.modes):
        from yue_train.tokenizer import STAND_IN_WARNING

        note(f"yue-prep build: {STAND_IN_WARNING}")
    print(
        f"{summary['songs_found']} songs: {summary['songs_encoded']} encoded, {summary['songs_reused']} reused, "
        f"{summary['songs_rejected']} rejected ({summary['audio_hours_encoded'] * 3600:.0f} s of audio encoded, "
        f"{summary['songs_per_s']} songs/s) -> {args.out / BUILD_SUMMARY_NAME}"
    )
    for r in summary["rejected"]:
        print(f"  rejected {r['id']} ({r['source']}): {r['reason']}", file=sys.stderr)
    for sid, info in summary["alignment"].items():
        print(f"  lyrics {sid}: {alignment_line(info)}")
    for sid, info in summary["transcription"].items():
        print(f"  lyrics {sid}: {transcription_line(info)}")
    if any(not info["reused"] for info in summary["transcription"].values()):
        print(f"  note: {GUESSED_LINE}")
    for sid, warnings in summary["tag_warnings"].items():
        for w in warnings:
            print(f"  warning {sid}: {w}", file=sys.stderr)
    for name, s in summary.get("shards", {}).items():
        unchanged = " (unchanged)" if s["reused"] else ""
        print(f"  {name:12s} {s['documents']} docs, {s['tokens']:,} tokens{unchanged}")
    if "error" in summary:
        print(f"yue-prep build: error: {summary['error']} (see {args.out / BUILD_SUMMARY_NAME})", file=sys.stderr)
    return code
