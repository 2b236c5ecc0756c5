"""Codec throughput: seconds of audio encoded / decoded / upsampled per second of wall time.

    python benchmarks/codec_throughput.py                    # released architecture, random weights, CPU/GPU auto
    python benchmarks/codec_throughput.py --codec codec/ --audio song.mp3 --device cuda --bf16

Random weights cost what real ones cost (the same layers run), so no download is needed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from yue_train.codec.config import UpsamplerConfig, yue_xcodec_config
from yue_train.codec.model import ChunkPlan, YueCodec, build_upsampler, build_xcodec


def random_codec(device: str, bf16: bool, with_upsampler: bool) -> YueCodec:
    torch.manual_seed(0)
    model = build_xcodec(yue_xcodec_config())
    with torch.no_grad():
        for q in model.quantizer.quantizers:
            q.codebook.embed.normal_()
    ups = {"vocal": build_upsampler(UpsamplerConfig())} if with_upsampler else {}
    return YueCodec(model, ups, device=device, bf16=bf16)


def timed(fn, *args, repeats: int = 1, sync: bool = False, **kwargs):
    best, out = float("inf"), None
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", help="converted codec folder (default: released architecture with random weights)")
    p.add_argument("--audio", help="audio file to encode (default: synthetic music)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of synthetic audio per item (default 20)")
    p.add_argument("--items", type=int, default=2, help="items encoded together with encode_many (default 2)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--n-codebooks", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--skip-upsample", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.codec:
        codec = YueCodec.from_folder(
            args.codec, device=args.device, bf16=args.bf16, load_upsamplers=not args.skip_upsample
        )
    else:
        codec = random_codec(args.device, args.bf16, not args.skip_upsample)
    codec.chunk = ChunkPlan()
    sync = codec.device.type == "cuda"
    if args.audio:
        from yue_train.codec.audio_io import load_audio

        waves = [load_audio(args.audio)] * args.items
    else:
        rng = np.random.default_rng(0)
        n = int(args.seconds * 16000)
        t = np.arange(n) / 16000
        waves = [
            (0.2 * np.sin(2 * np.pi * (110 + 50 * i) * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
            for i in range(args.items)
        ]
    audio_s = sum(len(w) for w in waves) / 16000

    codec.encode(waves[0][:16000], args.n_codebooks)  # warm-up (kernels, allocator)
    enc_s, codes = timed(codec.encode_many, waves, args.n_codebooks, args.batch_size, repeats=args.repeats, sync=sync)
    dec_s, _ = timed(codec.decode, codes[0], repeats=args.repeats, sync=sync)
    result = {
        "device": str(codec.device)
        + (
            f" ({torch.cuda.get_device_name()})"
            if sync
            else f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        ),
        "bf16": codec.autocast,
        "n_codebooks": args.n_codebooks,
        "items": len(waves),
        "audio_seconds": round(audio_s, 2),
        "encode_wall_s": round(enc_s, 3),
        "encode_audio_s_per_wall_s": round(audio_s / enc_s, 2),
        "decode_16k_audio_s_per_wall_s": round(len(waves[0]) / 16000 / dec_s, 2),
    }
    if not args.skip_upsample and codec.upsamplers:
        track = next(iter(codec.upsamplers))
        up_s, _ = timed(codec.upsample, codes[0], track, repeats=args.repeats, sync=sync)
        result["upsample_44k_audio_s_per_wall_s"] = round(len(waves[0]) / 16000 / up_s, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
