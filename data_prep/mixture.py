"""Shard sets of ``yue-prep build`` and the data-mixture file that lists them.

Each requested mode is one ``yue-prep tokenize`` run into ``<out>/shards/<mode>/``. A set is re-tokenized
only when its key changed: the content hash (manifest text + every code file's bytes) and the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yue_train
from yue_train.data.shards import SUMMARY_NAME, read_summary, write_json_atomic
from yue_train.format.bounded_json import JsonFileError, read_json_object

if TYPE_CHECKING:
    from data_prep.build import BuildOptions

MIXTURE_NAME = "mixture.json"


def _mode_options(name: str) -> tuple[str, str]:
    if name.startswith("icl-"):
        return "icl", name[4:]
    return name, "dual"


def _shards_complete(shard_dir: Path, summary: dict[str, Any]) -> bool:
    return all((shard_dir / s["name"]).is_file() for s in summary.get("shards", []))


def tokenize_modes(
    opts: BuildOptions, manifest: Path, manifest_sha: str, codec_fp: str | None = None
) -> list[dict[str, Any]]:
    """Run ``yue-prep tokenize`` for each mode whose shards are missing or stale; returns mixture entries."""
    from yue_train.data.tokenize import TokenizeOptions, run_tokenize

    previous: dict[str, dict[str, Any]] = {}
    mixture_path = opts.out / MIXTURE_NAME
    if mixture_path.is_file():
        try:
            previous = {e["name"]: e for e in read_json_object(mixture_path).get("datasets", [])}
        except (JsonFileError, KeyError, TypeError, AttributeError):
            previous = {}
    entries = []
    for name in opts.modes:
        mode, prompt = _mode_options(name)
        key = {
            "content_sha256": manifest_sha,
            "mode": mode,
            "icl_prompt": prompt,
            "stage2_sources": list(opts.stage2_sources) if mode == "stage2" else [],
            "seed": opts.seed,
            "shard_docs": opts.shard_docs,
            "max_doc_tokens": opts.max_doc_tokens,
            "tokenizer": str(opts.tokenizer),
            "codec": codec_fp,
            "yue_train_version": yue_train.__version__,
        }
        shard_dir = opts.out / "shards" / name
        summary = None
        if not opts.force and previous.get(name, {}).get("key") == key and (shard_dir / SUMMARY_NAME).is_file():
            summary = read_summary(shard_dir)
            if summary.get("status") == "failed" or not _shards_complete(shard_dir, summary):
                summary = None
        reused = summary is not None
        if summary is None:
            tok = TokenizeOptions(
                manifest=manifest,
                out=shard_dir,
                root=opts.out,
                tokenizer=opts.tokenizer,
                mode=mode,
                icl_prompt=prompt,
                stage2_sources=tuple(opts.stage2_sources),
                seed=opts.seed,
                workers=opts.workers,
                shard_docs=opts.shard_docs,
                overwrite=True,
                progress=opts.progress,
                codec_fingerprint=codec_fp,
                max_doc_tokens=opts.max_doc_tokens,
            )
            summary, _ = run_tokenize(tok)
        entries.append(
            {
                "name": name,
                "mode": mode,
                **({"icl_prompt": prompt} if mode == "icl" else {}),
                **({"stage2_sources": list(opts.stage2_sources)} if mode == "stage2" else {}),
                "path": f"shards/{name}",
                "shards": [
                    {"path": f"shards/{name}/{s['name']}", "n_docs": s["n_docs"], "n_tokens": s["n_tokens"]}
                    for s in summary["shards"]
                ],
                "documents": summary["documents_written"],
                "tokens": summary["tokens_total"],
                "tokens_per_role": summary["tokens_per_role"],
                "records_rejected": summary["records_rejected"],
                "rejected": summary["rejected"],
                "reused": reused,
                "key": key,
            }
        )
    return entries


def write_mixture(opts: BuildOptions, entries: list[dict[str, Any]], manifest_sha: str) -> dict[str, Any]:
    total = sum(e["tokens"] for e in entries)
    mixture = {
        "format": "yue-train-mixture",
        "version": 1,
        "root": ".",  # paths below are relative to this file's folder
        "manifest": "manifest.jsonl",
        "content_sha256": manifest_sha,
        "tokens_total": total,
        # Token share of each set: a starting point for sampling weights, not a recommendation.
        "datasets": [{**e, "token_share": round(e["tokens"] / total, 6) if total else 0.0} for e in entries],
    }
    write_json_atomic(opts.out / MIXTURE_NAME, mixture)
    return mixture
