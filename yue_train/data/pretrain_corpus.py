"""Small generated CoT and ICL shard folders, so the multiphase pre-training chain runs with no data.

A ``data.train`` (or ``data.eval``) entry may carry a ``synthetic`` block; its shards are then written to
the entry's ``path`` before training, unless a finished folder with the same block is already there::

    data:
      train:
        - name: cot_a
          path: ${trainer.runs_root}/pretrain_tiny_corpus/cot_a
          rounds: 1.0
          synthetic: {kind: cot, n_songs: 32, seconds: [2.0, 3.0], seed: 1}
        - name: icl
          path: ${trainer.runs_root}/pretrain_tiny_corpus/icl
          weight: 1.0
          synthetic: {kind: icl, n_songs: 24, seed: 3, icl_prompt: all}

``kind: cot`` writes chain-of-thought documents, ``kind: icl`` in-context-learning documents whose
reference block comes from ``icl_prompt`` (dual | vocal | inst | mixture, or ``all``: the four in turn, so
the prompt_vocal, prompt_inst and prompt_mix roles all occur). Songs are :func:`.synthetic.demo_song`
songs (learnable motifs); documents go through the real sequence builders and the real shard writer, and
the folder gets a ``summary.json`` like ``yue-prep tokenize`` writes (per-shard ``n_docs``/``n_tokens``),
which is what :mod:`yue_train.training.plan` reads to size a dataset.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from yue_train.data.shards import SUMMARY_NAME, ShardWriter, owned_files, write_summary
from yue_train.data.synthetic import demo_song
from yue_train.format.bounded_json import JsonFileError, read_json_object
from yue_train.format.document import Document
from yue_train.format.roles import role_token_counts
from yue_train.format.sequences import ICL_PROMPT_MODES, build_cot_document, build_icl_document, record_rng
from yue_train.tokenizer import load_tokenizer

KINDS = ("cot", "icl")
SYNTHETIC_KEY = "synthetic"
_DEFAULTS: dict[str, Any] = {"kind": "cot", "n_songs": 32, "seconds": [2.0, 3.0], "seed": 0, "icl_prompt": "all"}
# Each half of a demo song is one lyrics segment; ICL segments must last >= 1 s (the official filter),
# so shorter songs would yield no usable segment.
MIN_SECONDS = 2.0


class SyntheticDataError(ValueError):
    """A ``synthetic`` block that cannot be generated; the message names the entry."""


def synthetic_spec(block: Any, where: str) -> dict[str, Any]:
    """The ``synthetic`` block with defaults filled in and checked (a plain dict, stored in the summary)."""
    raw = OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else dict(block)
    unknown = sorted(set(raw) - set(_DEFAULTS))
    if unknown:
        raise SyntheticDataError(
            f"{where}.synthetic: unknown key(s) {', '.join(unknown)}; known: {', '.join(_DEFAULTS)}"
        )
    spec = {**_DEFAULTS, **raw}
    spec["seconds"] = [float(x) for x in spec["seconds"]]
    spec["n_songs"], spec["seed"] = int(spec["n_songs"]), int(spec["seed"])
    if spec["kind"] not in KINDS:
        raise SyntheticDataError(f"{where}.synthetic.kind={spec['kind']!r}; choose one of {', '.join(KINDS)}")
    if spec["icl_prompt"] not in (*ICL_PROMPT_MODES, "all"):
        raise SyntheticDataError(
            f"{where}.synthetic.icl_prompt={spec['icl_prompt']!r}; choose all or one of {', '.join(ICL_PROMPT_MODES)}"
        )
    lo, hi = spec["seconds"]
    if not MIN_SECONDS <= lo <= hi:
        raise SyntheticDataError(f"{where}.synthetic.seconds={spec['seconds']}: need {MIN_SECONDS} <= low <= high")
    if spec["n_songs"] < 1:
        raise SyntheticDataError(f"{where}.synthetic.n_songs must be >= 1")
    return spec


def _documents(spec: dict[str, Any]) -> Iterator[Document]:
    rng = np.random.default_rng(spec["seed"])
    tokenizer = load_tokenizer(None)
    modes = list(ICL_PROMPT_MODES) if spec["icl_prompt"] == "all" else [spec["icl_prompt"]]
    for i in range(spec["n_songs"]):
        # Ids carry the seed so that two generated datasets never share document ids (held-out
        # membership and duplicate checks go by id).
        song_id = f"synth-{spec['kind']}-{spec['seed']}-{i:05d}"
        seconds = float(rng.uniform(*spec["seconds"]))
        mode = modes[i % len(modes)] if spec["kind"] == "icl" else None
        song = demo_song(rng, song_id, seconds, mixture=mode == "mixture")
        if mode is None:
            yield build_cot_document(tokenizer, song)
        else:
            yield build_icl_document(tokenizer, song, mode, record_rng(spec["seed"], song_id))


def _is_current(out: Path, spec: dict[str, Any]) -> bool:
    summary = out / SUMMARY_NAME
    if not summary.is_file():
        return False
    try:
        done = read_json_object(summary)
    except JsonFileError:
        return False
    if not isinstance(done.get("shards", []), list) or not all(isinstance(s, dict) for s in done.get("shards", [])):
        return False
    return done.get(SYNTHETIC_KEY) == spec and all((out / s["name"]).is_file() for s in done.get("shards", []))


def write_synthetic_shards(out_dir: str | Path, spec: dict[str, Any], docs_per_shard: int = 16) -> Path:
    """Write the dataset ``spec`` describes into ``out_dir`` unless it is there already; returns ``out_dir``.

    ``summary.json`` is written last, so a folder without it (an interrupted write) is rebuilt; a folder
    written from another spec is rebuilt too.
    """
    out = Path(out_dir)
    if _is_current(out, spec):
        return out
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"synth-{spec['kind']}"
    for stale in owned_files(out, prefix):
        stale.unlink()
    roles: Counter[str] = Counter()
    n_docs = 0
    with ShardWriter(out, prefix=prefix, max_docs=docs_per_shard, tokenizer=load_tokenizer(None)) as writer:
        for doc in _documents(spec):
            writer.write(doc)
            roles.update(role_token_counts(doc.roles))
            n_docs += 1
        shards = writer.close()
    summary = {
        SYNTHETIC_KEY: spec,
        "mode": spec["kind"],
        "documents_written": n_docs,
        "tokens_total": int(sum(roles.values())),
        "tokens_per_role": dict(sorted(roles.items())),
        "shards": shards,
    }
    write_summary(out, summary, writer)
    return out


def synthetic_entries(cfg: Any) -> list[tuple[str, dict[str, Any]]]:
    """(folder, checked spec) of every ``data.train``/``data.eval`` entry with a ``synthetic`` block; writes
    nothing, so every process can run it with the other config checks."""
    found: list[tuple[str, dict[str, Any]]] = []
    for group in ("train", "eval"):
        entries = cfg.data.get(group) or []
        for i, entry in enumerate(entries):
            block = entry.get(SYNTHETIC_KEY) if hasattr(entry, "get") else None
            if not block:
                continue
            where = f"data.{group}[{i}]"
            if not isinstance(entry.get("path"), str):
                raise SyntheticDataError(f"{where}: a synthetic dataset needs one folder as its path")
            found.append((entry.path, synthetic_spec(block, where)))
    return found


def prepare_synthetic_datasets(cfg: Any) -> list[Path]:
    """Generate every ``data.train``/``data.eval`` entry that has a ``synthetic`` block (part of the data
    preparation step, :func:`yue_train.data.generated.prepare_data`)."""
    return [write_synthetic_shards(path, spec) for path, spec in synthetic_entries(cfg)]
