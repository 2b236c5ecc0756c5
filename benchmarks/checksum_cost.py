"""Cost of the shard checksums: verification against data loading, computation against tokenizing.

    python benchmarks/checksum_cost.py --songs 64 --mode cot stage2

For each mode the synthetic corpus (54 s songs) is tokenized once (``yue-prep tokenize``, one worker).
Then, with the shards in the page cache (the fastest loading, so the largest share for the checksums),
each measurement the best of --repeat, verified and unverified runs interleaved:

- read: reading and decoding every document (:func:`yue_train.data.shard_reader.iter_records`) with the
  folder's checksums verified, and from a copy without its summary (unverified);
- stream: every document read in order and packed into ``--seq-len`` rows
  (:class:`yue_train.data.packing.Packer`), verified and not;
- the checksum alone (XXH3-64 of every document's members, what verification adds) as a share of the
  verified read, of the stream, and of the tokenize time (the writer computes each checksum once);
- CRC-32 and SHA-256 of the same bytes, for comparison.

The reader decodes without copying (``numpy.frombuffer``), so reading alone is little more than the file's
bytes passing through Python: the checksum's share of it is the upper bound.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from yue_train.data.packing import Packer
from yue_train.data.shard_reader import (
    MEMBERS,
    doc_checksum,
    group_samples,
    iter_documents,
    iter_records,
    shard_paths,
)
from yue_train.data.synthetic import write_synthetic_manifest
from yue_train.data.tar_stream import iter_members
from yue_train.data.tokenize import TokenizeOptions, run_tokenize


def _best_of(fns: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    """Best time of each function, the functions run in turn ``repeat`` times (so drift hits all alike)."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _members(folder: Path) -> list[dict[str, bytes]]:
    out = []
    for path in shard_paths(folder):
        with open(path, "rb") as f:
            out.extend(members for _key, members, _problem in group_samples(iter_members(f)))
    return out


def _unverified_copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    (dest / "summary.json").unlink()  # shards without a summary are read unverified
    return dest


def _read(urls: list[str]) -> None:
    for _ in iter_records(urls):
        pass


def _stream(urls: list[str], seq_len: int) -> None:
    packer = Packer(iter_documents(urls), seq_len)
    try:
        while True:
            packer.next_batch(1)
    except StopIteration:
        pass


def _hash_all(members: list[dict[str, bytes]], fn: Callable[[bytes], object] | None) -> None:
    """Each document's members hashed with ``fn`` (None: the shards' own checksum)."""
    for m in members:
        if fn is None:
            doc_checksum(m)
            continue
        for name in MEMBERS:
            fn(m[name])


def _measure(
    urls: list[str], plain: list[str], members: list[dict[str, bytes]], seq_len: int, repeat: int
) -> dict[str, float]:
    return _best_of(
        {
            "read": lambda: _read(urls),
            "read_plain": lambda: _read(plain),
            "stream": lambda: _stream(urls, seq_len),
            "stream_plain": lambda: _stream(plain, seq_len),
            "xxh3": lambda: _hash_all(members, None),
            "crc32": lambda: _hash_all(members, zlib.crc32),
            "sha256": lambda: _hash_all(members, lambda b: hashlib.sha256(b).digest()),
        },
        repeat,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=64)
    ap.add_argument("--mode", nargs="+", default=["cot", "stage2"])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--seq-len", type=int, default=8192)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.songs} synthetic songs")
    print(
        f"{'mode':7s} {'docs':>5s} {'MB':>5s} {'tokenize':>8s} {'read':>7s} {'unverif':>7s} {'stream':>7s} "
        f"{'unverif':>7s} {'xxh3':>7s} {'crc32':>7s} {'sha256':>7s}  {'xxh3/read':>9s} {'xxh3/stream':>11s} "
        f"{'xxh3/tokenize':>13s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_synthetic_manifest(Path(tmp) / "songs", n_songs=args.songs)
        for mode in args.mode:
            out = Path(tmp) / mode
            opts = TokenizeOptions(
                manifest=manifest, out=out, root=manifest.parent, mode=mode, workers=1, progress=False
            )
            summary, _ = run_tokenize(opts)
            urls, plain = shard_paths(out), shard_paths(_unverified_copy(out, Path(tmp) / f"{mode}-plain"))
            members = _members(out)
            n_bytes = sum(len(m[name]) for m in members for name in MEMBERS)
            _read(urls)  # into the page cache
            t = _measure(urls, plain, members, args.seq_len, args.repeat)
            tok = summary["elapsed_s"]
            print(
                f"{mode:7s} {len(members):5d} {n_bytes / 1e6:5.1f} {tok:8.3f} {t['read']:7.4f} {t['read_plain']:7.4f} "
                f"{t['stream']:7.4f} {t['stream_plain']:7.4f} {t['xxh3']:7.4f} {t['crc32']:7.4f} {t['sha256']:7.4f}  "
                f"{100 * t['xxh3'] / t['read']:8.2f}% {100 * t['xxh3'] / t['stream']:10.2f}% "
                f"{100 * t['xxh3'] / tok:12.3f}%"
            )
    print("times in seconds; xxh3/...: the checksum time as a share of the verified read, stream and tokenize")


if __name__ == "__main__":
    main()
