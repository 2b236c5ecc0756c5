"""Command-line entry points of the codec, wired into ``yue-prep`` / ``yue-infer`` and runnable alone::

    python -m yue_train.codec.cli convert-codec --xcodec-ckpt final_ckpt/ckpt_00360000.pth \\
        --vocal-decoder decoders/decoder_131000.pth --inst-decoder decoders/decoder_151000.pth --out codec/
    python -m yue_train.codec.cli encode --codec codec/ --out codes/ song.mp3 other.flac
    python -m yue_train.codec.cli decode --codec codec/ --codes codes/song.npy --track vocal --out song.wav
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yue_train.format import codec_layout as cl

log = logging.getLogger("yue_train.codec")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


def convert_parser(prog: str = "yue-prep convert-codec") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Convert YuE's official X-Codec checkpoint (xcodec_mini_infer final_ckpt/ckpt_00360000.pth) and "
        "optionally its Vocos upsamplers (decoders/decoder_131000.pth for vocals, decoder_151000.pth for the "
        "accompaniment) into a folder of safetensors + config that `encode`, `decode` and training load. "
        "Pickles are read through an allow-list: nothing in them is executed.",
    )
    p.add_argument("--xcodec-ckpt", required=True, type=Path, help="official codec checkpoint (.pth)")
    p.add_argument("--vocal-decoder", type=Path, help="Vocos upsampler for vocals (decoder_131000.pth)")
    p.add_argument("--inst-decoder", type=Path, help="Vocos upsampler for the accompaniment (decoder_151000.pth)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--codec-config", type=Path, help="official codec config.yaml (default: the one beside the checkpoint)"
    )
    p.add_argument(
        "--semantic-config",
        type=Path,
        help="HuBERT config.json (default: ../semantic_ckpts/hf_1_325000/config.json beside the checkpoint, "
        "else HuBERT-base)",
    )
    p.add_argument("--upsampler-config", type=Path, help="Vocos decoders/config.yaml (default: beside the decoders)")
    p.add_argument(
        "--allow-data-class",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="treat this pickled class as inert data (stubbed, never run) if the checkpoint is refused for it",
    )
    p.add_argument("--no-hash", action="store_true", help="do not record sha256 of the source files")
    return p


def convert_codec_main(argv: Sequence[str] | None = None) -> int:
    args = convert_parser().parse_args(argv)
    _setup_logging()
    from yue_train.codec.convert import CheckpointLayoutError
    from yue_train.codec.convert_files import convert_official
    from yue_train.safe_pickle import CheckpointReadError, UnsafeCheckpointError

    try:
        codec = convert_official(
            args.xcodec_ckpt,
            args.out,
            vocal_decoder=args.vocal_decoder,
            inst_decoder=args.inst_decoder,
            codec_config=args.codec_config,
            semantic_config=args.semantic_config,
            upsampler_config=args.upsampler_config,
            inert_globals=tuple(args.allow_data_class),
            hash_sources=not args.no_hash,
        )
    except (CheckpointReadError, UnsafeCheckpointError, CheckpointLayoutError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    print(f"wrote {args.out} ({codec.n_codebooks} codebooks; upsamplers: {', '.join(codec.upsamplers) or 'none'})")
    return 0


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codec", required=True, type=Path, help="converted codec folder (from convert-codec)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument(
        "--bf16", action="store_true", help="bf16 autocast for the networks on CUDA (codebook search stays fp32)"
    )


def encode_parser(prog: str = "yue-prep encode") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Encode audio files (wav/flac/mp3/ogg, any rate and channel count; mixed to mono and resampled "
        "to 16 kHz) into X-Codec codes: one OUT/<name>.npy int16 array of shape (n_codebooks, frames) per file, "
        "50 frames per second. Bad files are reported and skipped; the exit code is 1 if any failed.",
    )
    _add_runtime_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder for .npy codes and encode_report.json")
    p.add_argument("audio", nargs="*", type=Path, help="audio files")
    p.add_argument(
        "--manifest",
        type=Path,
        help='file listing audio: one path per line, or JSON lines {"audio": PATH, "out": NAME}; relative '
        "paths are relative to the manifest",
    )
    p.add_argument(
        "--n-codebooks",
        type=int,
        default=1,
        help="codebooks to keep: 1 (0.5 kbps, stage 1), 8 (4 kbps, stage 2) or 12; also 2, 3, 4 (default 1)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="equal-length windows per forward pass (default 4)")
    p.add_argument(
        "--chunk-seconds", type=float, default=60.0, help="longer files are encoded in windows of this length"
    )
    p.add_argument(
        "--context-seconds", type=float, default=2.0, help="audio encoded and dropped on each side of a window"
    )
    p.add_argument("--allow-silent", action="store_true", help="encode silent files instead of reporting them")
    p.add_argument("--overwrite", action="store_true", help="re-encode files whose .npy exists")
    p.add_argument("--report", type=Path, help="JSON report path (default OUT/encode_report.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (-q implies it)")
    return p


def encode_main(argv: Sequence[str] | None = None) -> int:
    args = encode_parser().parse_args(argv)
    _setup_logging()
    from yue_train.codec.batch import encode_files, jobs_from_manifest, jobs_from_paths, write_report
    from yue_train.codec.model import ChunkPlan, YueCodec

    if not args.audio and not args.manifest:
        return _fail("give audio files and/or --manifest")
    if args.chunk_seconds <= 0 or args.context_seconds < 0:
        return _fail("--chunk-seconds must be > 0 and --context-seconds >= 0")
    try:
        jobs = jobs_from_paths(args.audio, args.out)
        if args.manifest:
            jobs += jobs_from_manifest(args.manifest, args.out)
        codec = YueCodec.from_folder(args.codec, device=args.device, bf16=args.bf16, load_upsamplers=False)
        codec.bandwidth_for(args.n_codebooks)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    fps = cl.FRAMES_PER_SECOND
    codec.chunk = ChunkPlan(max(1, round(args.chunk_seconds * fps)), round(args.context_seconds * fps))
    t0 = time.perf_counter()
    results = encode_files(
        codec,
        jobs,
        n_codebooks=args.n_codebooks,
        batch_size=args.batch_size,
        allow_silent=args.allow_silent,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    wall = time.perf_counter() - t0
    report = write_report(results, args.report or args.out / "encode_report.json", wall)
    ok = [r for r in results if r.status == "ok"]
    bad = [r for r in results if r.status == "error"]
    skipped = len(results) - len(ok) - len(bad)
    audio_s = sum(r.seconds for r in ok)
    print(
        f"encoded {len(ok)} file(s), {audio_s:.1f} s of audio in {wall:.1f} s; {skipped} skipped; {len(bad)} failed; "
        f"report: {report}"
    )
    for r in bad:
        print(f"FAILED {r.error}", file=sys.stderr)
    return 1 if bad else 0


def decode_parser(prog: str = "yue-infer decode") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Decode X-Codec codes (.npy, shape (n_codebooks, frames) or (frames,)) to audio: 16 kHz through "
        "the X-Codec decoder (320 samples per frame), or with --track to 44.1 kHz through that track's Vocos "
        "upsampler (882 samples per frame).",
    )
    _add_runtime_args(p)
    p.add_argument("--codes", required=True, type=Path, help=".npy codes")
    p.add_argument("--track", choices=("vocal", "inst"), help="upsample to 44.1 kHz with this track's upsampler")
    p.add_argument("--out", required=True, type=Path, help="output audio file (.wav, .flac, .mp3, .ogg)")
    p.add_argument("--n-codebooks", type=int, help="use only the first N codebooks of the file")
    p.add_argument("--rescale", action="store_true", help="scale down to avoid clipping instead of clamping at +-0.99")
    return p


def decode_main(argv: Sequence[str] | None = None) -> int:
    args = decode_parser().parse_args(argv)
    _setup_logging()
    from yue_train.codec.audio_io import write_audio
    from yue_train.codec.model import YueCodec
    from yue_train.codec.playback import codes_to_audio

    if not args.codes.is_file():
        return _fail(f"{args.codes}: codes file not found")
    try:
        codes = np.load(args.codes, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        return _fail(f"{args.codes}: not a readable .npy array ({e})")
    if args.n_codebooks is not None:
        codes = np.atleast_2d(codes)[: args.n_codebooks]
    try:
        codec = YueCodec.from_folder(
            args.codec, device=args.device, bf16=args.bf16, load_upsamplers=args.track is not None
        )
        codec.check_codes(codes, str(args.codes))
        wave, sr = codes_to_audio(codec, codes, args.track)
    except (FileNotFoundError, ValueError, KeyError) as e:
        return _fail(str(e).strip('"'))
    write_audio(args.out, wave, sr, rescale=args.rescale)
    print(f"wrote {args.out}: {len(wave)} samples at {sr} Hz ({len(wave) / sr:.2f} s)")
    return 0


COMMANDS = {"convert-codec": convert_codec_main, "encode": encode_main, "decode": decode_main}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m yue_train.codec.cli {{{','.join(COMMANDS)}}} ... (--help for each)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
