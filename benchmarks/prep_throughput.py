"""CPU cost of `yue-prep tokenize` on CoT documents, beside the official YuE preprocessing.

    python benchmarks/prep_throughput.py                          # 200 three-minute songs, 2 workers, 3 runs
    python benchmarks/prep_throughput.py --songs 4 --seconds 30 --repeats 1
    python benchmarks/prep_throughput.py --official-repo YuE/ --official-python PINNED_VENV/bin/python

The corpus is synthetic: official-format manifest records of songs in six sections with lyrics, and
``(1, frames)`` int64 codebook-0 arrays, as in the official fine-tuning example. Each side runs as a fresh
process and is charged the user+sys CPU time of its whole process tree (interpreter start-up, imports,
worker pool), read with ``getrusage(RUSAGE_CHILDREN)`` around it; runs alternate between the sides and the
medians are printed.

The official side is ``finetune/core/preprocess_data_conditional_xcodec_segment.py`` run with the arguments
of ``finetune/scripts/preprocess_data.sh dummy cot`` (``--workers`` set to ours), from a checkout of the
official repository given with ``--official-repo`` and an interpreter that has its pinned requirements
(``finetune/requirements.txt``). Its documents are read back from the Megatron ``.bin``/``.idx`` files and
compared with ours token for token. Without ``--official-repo`` the recorded official figure is printed,
marked as recorded. Without an official run the token check is made against the official golden streams
of the reference example in ``tests/fixtures``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from yue_train.data.shards import iter_documents, read_summary  # noqa: E402
from yue_train.data.synthetic import MANIFEST_PLAN, MANIFEST_STYLE, manifest_record, synth_song  # noqa: E402

REFERENCE = REPO / "tests" / "fixtures"  # YuE's tokenizer, the official example and its golden streams
# The official preprocessing measured by the project (official code at its pinned requirements, torch 2.4.0):
# CoT documents of 200 synthetic three-minute songs with 2 workers on a 2-core x86-64 CPU machine (the
# project's development machine kind).
RECORDED_OFFICIAL = {"songs": 200, "seconds": 180.0, "workers": 2, "cpu_s": 24.85,
                     "machine": "2-core x86-64 CPU (development machine kind)"}  # fmt: skip
OFFICIAL_SCRIPT = "finetune/core/preprocess_data_conditional_xcodec_segment.py"
COT_INSTRUCTION = "Generate music from the given lyrics segment by segment."  # preprocess_data.sh, dummy setting
PINNED_CHECK = ("torch", "numpy", "scipy", "sentencepiece", "nltk", "einops")  # what the official script imports
MEGATRON_DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
                   8: np.uint16}  # fmt: skip


def write_corpus(out: Path, n_songs: int, seconds: float, seed: int = 0) -> Path:
    """``out/manifest.jsonl`` and ``out/npy/`` of ``n_songs`` songs of ``seconds``; paths relative to ``out``."""
    (out / "npy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale = seconds / sum(sec for _, sec in MANIFEST_PLAN)
    plan = [(label, sec * scale) for label, sec in MANIFEST_PLAN]
    style = replace(MANIFEST_STYLE, n_codebooks=1)
    lines = []
    for n in range(n_songs):
        song = synth_song(rng, f"song{n:05d}", plan, style, mixture=True)
        record = manifest_record(song)
        for field, codes in (
            ("codec", song.mixture),
            ("vocals_codec", song.vocals),
            ("instrumental_codec", song.instrumental),
        ):
            np.save(out / record[field], np.asarray(codes, dtype=np.int64))
        lines.append(json.dumps(record))
    manifest = out / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def charged(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(CPU-seconds of the process tree, wall seconds, output) of one command run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"prep_throughput: {cmd[0]} {cmd[1]} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.stdout + proc.stderr


def ours_cmd(manifest: Path, out: Path, tokenizer: Path | None, workers: int, mode: str) -> list[str]:
    cmd = [sys.executable, "-m", "data_prep.cli", "-q", "tokenize", "--manifest", str(manifest), "--root",
           str(manifest.parent), "--out", str(out), "--mode", mode, "--workers", str(workers), "--no-progress"]  # fmt: skip
    return cmd + (["--tokenizer", str(tokenizer)] if tokenizer else [])


def official_cmd(python: str, repo: Path, manifest: Path, prefix: Path, tokenizer: Path, workers: int) -> list[str]:
    """The ``cot`` command of the official ``preprocess_data.sh`` (run in the manifest's folder)."""
    return [python, str(repo / OFFICIAL_SCRIPT), "--input", str(manifest), "--output-prefix", str(prefix),
            "--tokenizer-model", str(tokenizer), "--tokenizer-type", "MMSentencePieceTokenizer",
            "--codec-type", "xcodec", "--workers", str(workers), "--partitions", "1",
            "--instruction", COT_INSTRUCTION, "--instruction-dropout-rate", "0.0", "--order", "textfirst",
            "--append-eod", "--quantizer-begin", "0", "--n-quantizer", "1", "--use-token-level-interleave",
            "--keep-sequential-samples", "--cot"]  # fmt: skip


def official_versions(python: str, repo: Path) -> str:
    """Which versions of the official code's main requirements ``python`` has, against its pins."""
    pins = {}
    for line in (repo / "finetune" / "requirements.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name.lower() in PINNED_CHECK:
            pins[name.lower()] = version
    code = (
        "import importlib.metadata as m, json\n"
        f"def v(p):\n    try:\n        return m.version(p)\n    except m.PackageNotFoundError:\n        return None\n"
        f"print(json.dumps({{p: v(p) for p in {list(PINNED_CHECK)!r}}}))"
    )
    have = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)
    if all(have[p] == pins.get(p) for p in PINNED_CHECK):
        return "pinned versions (" + ", ".join(f"{p} {have[p]}" for p in PINNED_CHECK) + ")"
    diff = [f"{p} {have[p]} (pinned {pins.get(p)})" for p in PINNED_CHECK if have[p] != pins.get(p)]
    return "NOT the pinned versions: " + ", ".join(diff)


def read_megatron_documents(prefix: str) -> list[np.ndarray]:
    """The documents of a Megatron ``{prefix}.bin`` / ``{prefix}.idx`` pair (the official output)."""
    with open(prefix + ".idx", "rb") as f:
        if f.read(9) != b"MMIDIDX\x00\x00":
            raise ValueError(f"{prefix}.idx is not a Megatron index")
        (_version,) = struct.unpack("<Q", f.read(8))
        (code,) = struct.unpack("<B", f.read(1))
        n_seq, n_doc = struct.unpack("<QQ", f.read(16))
        lengths = np.frombuffer(f.read(4 * n_seq), dtype=np.int32)
        f.seek(8 * n_seq, os.SEEK_CUR)  # sequence pointers
        doc_index = np.frombuffer(f.read(8 * n_doc), dtype=np.int64)
    tokens = np.fromfile(prefix + ".bin", dtype=MEGATRON_DTYPES[code])
    bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return [tokens[bounds[a] : bounds[b]] for a, b in zip(doc_index[:-1], doc_index[1:], strict=True)]


def same_tokens(ours: Path, official: list[np.ndarray]) -> bool:
    docs = [d.input_ids for d in iter_documents(ours)]
    return len(docs) == len(official) and all(np.array_equal(a, b) for a, b in zip(docs, official, strict=True))


def golden_check(tokenizer: Path, tmp: Path) -> str:
    """Our CoT documents of the official example against the official golden streams."""
    example, golden = REFERENCE / "yue", REFERENCE / "golden" / "cot_dummy.npz"
    manifest = example / "example" / "jsonl" / "dummy.msa.xcodec_16k.jsonl"
    if not (manifest.is_file() and golden.is_file()):
        return "not checked (tests/fixtures lacks the example or its golden streams)"
    out = tmp / "golden"
    cmd = ours_cmd(manifest, out, tokenizer, 1, "cot")
    cmd[cmd.index("--root") + 1] = str(example)
    charged(cmd, REPO)
    expected = np.load(golden)
    docs = [d.input_ids for d in iter_documents(out)]
    same = len(docs) == len(expected.files) and all(np.array_equal(d, expected[f"arr_{n}"]) for n, d in enumerate(docs))
    return (
        "identical to the official golden streams of the reference example"
        if same
        else "DIFFERENT from the golden streams"
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each song (default: 180)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side; medians are printed (default: 3)")
    default_tok = REFERENCE / "yue" / "tokenizer.model"
    ap.add_argument("--tokenizer", type=Path, default=default_tok if default_tok.is_file() else None,
                    help="YuE tokenizer.model (default: tests/fixtures', else the generated stand-in)")  # fmt: skip
    ap.add_argument("--official-repo", type=Path, help="a checkout of the official YuE repository")
    ap.add_argument("--official-python", default=sys.executable, help="interpreter with the official requirements")
    args = ap.parse_args()
    if args.official_repo and not (args.official_repo / OFFICIAL_SCRIPT).is_file():
        sys.exit(f"prep_throughput: --official-repo {args.official_repo}: no {OFFICIAL_SCRIPT} in it")
    if args.official_repo and args.tokenizer is None:
        sys.exit(
            "prep_throughput: the official preprocessing needs the real tokenizer: pass --tokenizer tokenizer.model"
        )

    print(f"# {machine()}")
    print(f"# CoT tokenization of {args.songs} synthetic songs of {args.seconds:g} s, {args.workers} workers, "
          f"{'tokenizer ' + args.tokenizer.name if args.tokenizer else 'generated stand-in tokenizer'}; "
          f"CPU-s = user+sys of the whole process tree, median of {args.repeats}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        manifest = write_corpus(tmp / "corpus", args.songs, args.seconds)
        ours_runs, official_runs, official_docs = [], [], None
        for r in range(args.repeats):
            out = tmp / f"ours{r}"
            ours_runs.append(charged(ours_cmd(manifest, out, args.tokenizer, args.workers, "cot"), REPO)[:2])
            if args.official_repo:
                prefix = tmp / f"official{r}" / "cot"
                prefix.parent.mkdir()
                cmd = official_cmd(args.official_python, args.official_repo.resolve(), manifest, prefix, args.tokenizer,
                                   args.workers)  # fmt: skip
                official_runs.append(charged(cmd, manifest.parent)[:2])
                official_docs = read_megatron_documents(f"{prefix}_text_document")
        summary = read_summary(tmp / "ours0")
        ours_cpu = statistics.median(c for c, _ in ours_runs)
        ours_wall = statistics.median(w for _, w in ours_runs)
        docs, toks = summary["documents_written"], summary["tokens_total"]
        result = {"songs": args.songs, "seconds": args.seconds, "workers": args.workers, "documents": docs,
                  "tokens": toks, "yue_train_cpu_s": round(ours_cpu, 3), "yue_train_wall_s": round(ours_wall, 3),
                  "machine": machine()}  # fmt: skip
        if official_runs:
            result["official_cpu_s"] = round(statistics.median(c for c, _ in official_runs), 3)
            result["official_wall_s"] = round(statistics.median(w for _, w in official_runs), 3)
            versions = official_versions(args.official_python, args.official_repo)
            result["official_source"] = f"measured here with {args.official_python}: {versions}"
            assert official_docs is not None
            same = same_tokens(tmp / "ours0", official_docs)
            result["token_check"] = "identical to the official run's" if same else "DIFFERENT from the official run's"
            result["tokens_identical"] = same
        else:
            rec = RECORDED_OFFICIAL
            if (args.songs, args.seconds, args.workers) == (rec["songs"], rec["seconds"], rec["workers"]):
                result["official_cpu_s"] = rec["cpu_s"]
                result["official_source"] = f"recorded (pinned official install on a {rec['machine']}), not run here"
            else:
                result["official_source"] = (
                    f"no figure (recorded only for {rec['songs']} songs of {rec['seconds']:g} s, {rec['workers']} workers)"
                )
            if args.tokenizer is not None:
                check = golden_check(args.tokenizer, tmp)
                result["tokens_identical"] = check.startswith("identical")
                result["token_check"] = check
    print(f"{'side':14s} {'CPU-s':>8s} {'wall-s':>8s}  notes")
    print(f"{'yue-train':14s} {ours_cpu:8.2f} {ours_wall:8.2f}  {docs} documents, "
          f"{docs / ours_wall:.1f} docs/s, {toks / ours_wall:,.0f} tokens/s")  # fmt: skip
    if "official_cpu_s" in result:
        wall = f"{result['official_wall_s']:8.2f}" if "official_wall_s" in result else f"{'-':>8s}"
        print(f"{'official YuE':14s} {result['official_cpu_s']:8.2f} {wall}  {result['official_source']}")
        result["cpu_ratio"] = round(result["official_cpu_s"] / ours_cpu, 1)
        print(f"yue-train uses {result['cpu_ratio']}x less CPU")
    else:
        print(f"{'official YuE':14s} {'-':>8s} {'-':>8s}  {result['official_source']}")
    print(f"tokens: {result.get('token_check', 'not checked (no tokenizer.model)')}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
