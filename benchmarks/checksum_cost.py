"""Cost of the shard checksums: verification against data loading, computation against tokenizing.

    python benchmarks/checksum_cost.py --songs 16 --mode cot stage2

For each mode the synthetic corpus (54 s songs) is tokenized once (``yue-prep tokenize``, one worker).
Then, with the shards in the page cache (the fastest loading, so the largest share for the checksums):

- read: reading and decoding every document (:func:`yue_train.data.shard_reader.iter_records`) with the
  folder's checksums verified, and with them removed from its summary (unverified); best of --repeat;
- stream: the training data path, every document read, verified and packed into ``--seq-len`` rows
  (:class:`yue_train.data.packing.DocSource` and :class:`~yue_train.data.packing.Packer`);
- CRC-32 alone: the checksum of every document's members, the work verification adds, as a share of the
  verified read, of the stream, and of the tokenize time (the writer computes the same checksums once);
- SHA-256 of the same bytes, for comparison.

The reader decodes without copying (``numpy.frombuffer``), so reading alone is little more than the
file's bytes passing through Python: the CRC's share of it is the upper bound.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from data_prep.tokenize_manifest import TokenizeOptions, run_tokenize
from yue_train.data.packing import DocSource, Packer
from yue_train.data.shard_reader import MEMBERS, _samples, doc_checksum, iter_records, shard_paths
from yue_train.data.synthetic import write_synthetic_manifest


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _members(folder: Path) -> list[dict[str, bytes]]:
    out = []
    for path in shard_paths(folder):
        with open(path, "rb") as f:
            out.extend(members for _key, members, _problem in _samples(f))
    return out


def _unverified_copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    summary = json.loads((dest / "summary.json").read_text())
    for shard in summary["shards"]:
        shard.pop("crc32", None)
    (dest / "summary.json").write_text(json.dumps(summary))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=16)
    ap.add_argument("--mode", nargs="+", default=["cot", "stage2"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seq-len", type=int, default=8192)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.songs} synthetic songs")
    print(
        f"{'mode':7s} {'docs':>5s} {'MB':>6s} {'tokenize s':>10s} {'read s':>7s} {'unverif.':>8s} {'stream s':>8s} "
        f"{'crc32 s':>8s} {'sha256 s':>8s} {'crc/read':>8s} {'crc/stream':>10s} {'crc/tokenize':>12s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_synthetic_manifest(Path(tmp) / "songs", n_songs=args.songs)
        for mode in args.mode:
            out = Path(tmp) / mode
            opts = TokenizeOptions(
                manifest=manifest, out=out, root=manifest.parent, mode=mode, workers=1, progress=False
            )
            summary, _ = run_tokenize(opts)
            plain = _unverified_copy(out, Path(tmp) / f"{mode}-plain")
            urls, plain_urls = shard_paths(out), shard_paths(plain)
            members = _members(out)
            n_bytes = sum(len(m[name]) for m in members for name in MEMBERS)

            def load(u: list[str] = urls) -> None:
                for _ in iter_records(u):
                    pass

            def crc(ms: list[dict[str, bytes]] = members) -> None:
                for m in ms:
                    doc_checksum(m)

            def sha(ms: list[dict[str, bytes]] = members) -> None:
                for m in ms:
                    h = hashlib.sha256()
                    for name in MEMBERS:
                        h.update(m[name])

            def stream(u: list[str] = urls) -> None:
                packer = Packer(DocSource(u, seed=0, loop=False), args.seq_len)
                try:
                    while True:
                        packer.next_batch(1)
                except StopIteration:
                    pass

            load()  # page cache
            t_load = _best(load, args.repeat)
            t_plain = _best(functools.partial(load, plain_urls), args.repeat)
            t_stream = _best(stream, args.repeat)
            t_crc, t_sha = _best(crc, args.repeat), _best(sha, args.repeat)
            t_tok = summary["elapsed_s"]
            print(
                f"{mode:7s} {len(members):5d} {n_bytes / 1e6:6.1f} {t_tok:10.3f} {t_load:7.4f} {t_plain:8.4f} "
                f"{t_stream:8.4f} {t_crc:8.4f} {t_sha:8.4f} {100 * t_crc / t_load:7.1f}% {100 * t_crc / t_stream:9.2f}% "
                f"{100 * t_crc / t_tok:11.2f}%"
            )


if __name__ == "__main__":
    main()
