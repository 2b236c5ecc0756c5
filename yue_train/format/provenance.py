"""What a shard folder, checkpoint or exported model is: document modes, stage, tokenizer, vocabulary, codec.

The record travels with the files (``provenance`` in a shard folder's ``summary.json``,
``yue_provenance.json`` in a checkpoint and an exported model folder) so that training and inference can
compare what they are given with what they expect before doing any work. Plain JSON values only.

Stage follows from the document mode: ``cot`` and ``icl-*`` documents train stage 1 (text + codebook 0),
``stage2`` documents train stage 2 (codebook 0 -> codebooks 0-7). The tokenizer is identified by the
SHA-256 of its SentencePiece model file; stage-2 documents hold no text, so their record names no
tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from yue_train.format.bounded_json import read_json_object

PROVENANCE_NAME = "yue_provenance.json"  # in checkpoint and exported model folders
SUMMARY_KEY = "provenance"  # in a shard folder's summary.json
FORMAT = "yue-train-provenance"
VERSION = 1
# SHA-256 of YuE's released "mm tokenizer v0.2" tokenizer.model, the tokenizer every released model uses.
YUE_TOKENIZER_SHA256 = "ee5c7cbf32da93989f14d9ba635e3e1d1ab2cc88a92908a5ed0f149375f6ee49"


class TokenizerLike(Protocol):
    path: Path

    @property
    def vocab_size(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def is_synthetic(self) -> bool: ...


def stage_of_mode(mode: str) -> int | None:
    """1 for ``cot`` and ``icl-*`` documents, 2 for ``stage2``, None for anything else."""
    if mode == "cot" or mode == "icl" or mode.startswith("icl-"):
        return 1
    if mode == "stage2":
        return 2
    return None


def stages_of_modes(modes: list[str]) -> list[int]:
    """The distinct stages ``modes`` train, ascending (empty when no mode is a known one)."""
    return sorted({s for s in (stage_of_mode(m) for m in modes) if s is not None})


def file_fingerprint(path: str | Path, h: Any = None) -> str:
    """SHA-256 of a file's bytes (hex), continuing ``h`` (a ``hashlib.sha256`` that hashed a prefix) when given."""
    h = h or hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class TokenizerId:
    """A tokenizer as recorded: content hash, whether it is the generated stand-in, the file it was read from."""

    sha256: str
    synthetic: bool
    file: str = ""

    @classmethod
    def of(cls, tokenizer: TokenizerLike) -> TokenizerId:
        return cls(tokenizer.fingerprint, tokenizer.is_synthetic, str(tokenizer.path))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TokenizerId | None:
        if not d or not d.get("sha256"):
            return None
        return cls(str(d["sha256"]), bool(d.get("synthetic", False)), str(d.get("file", "")))

    def describe(self) -> str:
        if self.synthetic:
            return "the generated stand-in tokenizer"
        if self.sha256 == YUE_TOKENIZER_SHA256:
            return f"YuE's tokenizer.model{f' ({self.file})' if self.file else ''}"
        where = f" {self.file}" if self.file else ""
        return f"tokenizer{where} (sha256 {self.sha256[:12]})"

    def same_as(self, other: TokenizerId) -> bool:
        return self.sha256 == other.sha256


@dataclass
class Provenance:
    """What a set of documents (or a model trained on them) is."""

    modes: list[str] = field(default_factory=list)
    stage: int | None = None
    tokenizer: TokenizerId | None = None
    vocab_size: int | None = None  # ids the tokenizer produces (shards) or the model's embedding rows
    max_token_id: int | None = None  # largest id in the documents (shards)
    codec: str | None = None  # codec fingerprint (yue_train.codec.folder.codec_fingerprint) when known
    seq_len: int | None = None  # training row length (checkpoints, models)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokenizer"] = asdict(self.tokenizer) if self.tokenizer else None
        extra = d.pop("extra")
        return {"format": FORMAT, "version": VERSION, **d, **extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        known = {"modes", "stage", "tokenizer", "vocab_size", "max_token_id", "codec", "seq_len"}
        stage = d.get("stage")
        return cls(
            modes=[str(m) for m in d.get("modes") or []],
            stage=int(stage) if stage is not None else None,
            tokenizer=TokenizerId.from_dict(d.get("tokenizer")),
            vocab_size=d.get("vocab_size"),
            max_token_id=d.get("max_token_id"),
            codec=d.get("codec"),
            seq_len=d.get("seq_len"),
            extra={k: v for k, v in d.items() if k not in known | {"format", "version"}},
        )


def provenance_for(
    modes: list[str],
    tokenizer: TokenizerLike | None = None,
    codec: str | None = None,
    max_token_id: int | None = None,
) -> Provenance:
    """The record of documents in ``modes`` built with ``tokenizer`` from codes of ``codec``.

    Only documents with text (stage 1) depend on the tokenizer, so a stage-2-only record names none.
    """
    modes = sorted(set(modes))
    stages = stages_of_modes(modes)
    with_text = 1 in stages or not stages
    tok = TokenizerId.of(tokenizer) if tokenizer is not None and with_text else None
    return Provenance(
        modes=modes,
        stage=stages[0] if len(stages) == 1 else None,
        tokenizer=tok,
        vocab_size=tokenizer.vocab_size if tok is not None and tokenizer is not None else None,
        max_token_id=max_token_id,
        codec=codec,
    )


def write_provenance(folder: str | Path, prov: Provenance) -> Path:
    path = Path(folder) / PROVENANCE_NAME
    path.write_text(json.dumps(prov.as_dict(), indent=2) + "\n")
    return path


def read_provenance(folder: str | Path) -> Provenance | None:
    """The ``yue_provenance.json`` of a model or checkpoint folder; for a checkpoint's ``model/`` or
    ``adapter/`` subfolder, the checkpoint's. None when there is none (or it is unreadable)."""
    folder = Path(folder)
    candidates = [folder / PROVENANCE_NAME]
    if folder.name in ("model", "adapter"):
        candidates.append(folder.parent / PROVENANCE_NAME)
    for path in candidates:
        if path.is_file():
            try:
                return Provenance.from_dict(read_json_object(path))
            except (TypeError, ValueError, AttributeError, KeyError):  # JsonFileError is a ValueError
                return None
    return None
