"""Token shards: tar files of documents (token ids, roles, metadata) in the webdataset layout.

Each sample in a shard has three members: ``KEY.input_ids.npy`` (int32), ``KEY.roles.npy`` (uint8, see
:mod:`yue_train.format.roles`) and ``KEY.json`` (record id, mode, token counts, ...). A shard is written
under a temporary name and renamed when closed, so a file named ``*.tar`` is always complete. The folder's
``summary.json`` (:func:`write_summary`) carries the writer's provenance record
(:mod:`yue_train.format.provenance`): document modes, stage, tokenizer, largest token id, codec; its
``shards`` list gives each shard's documents, tokens and per-document checksums (``xxh3_64``), which the
reader (:mod:`.shard_reader`) verifies.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from yue_train.data.shard_reader import (
    CHECKSUM_KEY,
    SUMMARY_NAME,
    doc_checksum,
    iter_documents,
    shard_paths,
    summary_file,
)
from yue_train.data.tar_io import TarWriter
from yue_train.format.bounded_json import read_json_object
from yue_train.format.document import Document
from yue_train.format.provenance import SUMMARY_KEY, Provenance, TokenizerLike, provenance_for

TMP_SUFFIX = ".tmp"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


class ShardWriter:
    """Writes documents into ``{prefix}-{n:06d}.tar`` shards of at most ``max_docs`` documents each."""

    def __init__(
        self,
        out_dir: str | Path,
        prefix: str,
        max_docs: int = 1000,
        tokenizer: TokenizerLike | None = None,
        codec: str | None = None,
    ) -> None:
        """``tokenizer`` (the one text was encoded with) and ``codec`` (the codec fingerprint of the codes)
        go into :meth:`provenance`."""
        if max_docs < 1:
            raise ValueError("max_docs must be >= 1")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_docs = max_docs
        self.shards: list[dict[str, Any]] = []  # name, n_docs, n_tokens per finished shard
        self._tar: TarWriter | None = None
        self._tmp_path: Path | None = None
        self._docs_in_shard = 0
        self._tokens_in_shard = 0
        self._n_written = 0
        self._checksums: list[str] = []  # of the shard being written (its summary entry's ``xxh3_64``)
        self.tokenizer = tokenizer
        self.codec = codec
        self.modes: set[str] = set()
        self.max_token_id: int | None = None

    def provenance(self) -> Provenance:
        """What the documents written so far are (modes, stage, tokenizer, largest id, codec)."""
        return provenance_for(sorted(self.modes), self.tokenizer, self.codec, self.max_token_id)

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._tmp_path = self.out_dir / (name + TMP_SUFFIX)
        self._tar = TarWriter(self._tmp_path)
        self._docs_in_shard = 0
        self._tokens_in_shard = 0

    def _close_current(self) -> None:
        if self._tar is None or self._tmp_path is None:
            return
        self._tar.close()
        final = self._tmp_path.with_name(self._tmp_path.name[: -len(TMP_SUFFIX)])
        os.replace(self._tmp_path, final)
        self.shards.append(
            {
                "name": final.name,
                "n_docs": self._docs_in_shard,
                "n_tokens": self._tokens_in_shard,
                CHECKSUM_KEY: "".join(self._checksums),
            }
        )
        self._tar = None
        self._tmp_path = None
        self._checksums = []

    def write(self, doc: Document) -> None:
        if self._tar is None:
            self._open()
        assert self._tar is not None
        members = {
            "input_ids.npy": _npy_bytes(doc.input_ids),
            "roles.npy": _npy_bytes(doc.roles),
            "json": json.dumps(doc.meta, ensure_ascii=False).encode("utf-8"),
        }
        self._checksums.append(doc_checksum(members))
        self._tar.write(f"{self._n_written:09d}", members)
        self._n_written += 1
        self.modes.add(doc.mode)
        if len(doc):
            top = int(doc.input_ids.max())
            self.max_token_id = top if self.max_token_id is None else max(self.max_token_id, top)
        self._docs_in_shard += 1
        self._tokens_in_shard += len(doc)
        if self._docs_in_shard >= self.max_docs:
            self._close_current()

    def close(self) -> list[dict[str, Any]]:
        self._close_current()
        return self.shards

    def abort(self) -> None:
        """Drop the shard being written (its temporary file) without publishing it."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        self._checksums = []
        if self._tmp_path is not None and self._tmp_path.exists():
            self._tmp_path.unlink()
        self._tmp_path = None

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def owned_files(out: Path, prefix: str) -> list[Path]:
    """What a writer of ``prefix`` shards leaves in ``out``: its shards, temporary files and the summary."""
    return [*out.glob(f"{prefix}-*.tar"), *out.glob(f"*{TMP_SUFFIX}"), *out.glob(SUMMARY_NAME)]


def read_summary(shard_dir: str | Path) -> dict[str, Any]:
    path = Path(shard_dir) / SUMMARY_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the shard folder is incomplete or was not written by yue-prep")
    return read_json_object(path)


def write_summary(out_dir: str | Path, summary: dict[str, Any], writer: ShardWriter, name: str = SUMMARY_NAME) -> Path:
    """Add the writer's provenance record to ``summary`` and write it as the folder's ``summary.json``
    (atomically; written last, so a folder with a summary is complete)."""
    summary[SUMMARY_KEY] = writer.provenance().as_dict()
    path = Path(out_dir) / name
    write_json_atomic(path, summary)
    return path


def folder_provenance(path: str | Path) -> Provenance | None:
    """The provenance record of a local shard folder (or of the folder a ``.tar`` sits in), from its
    summary. None when unknown."""
    p = Path(path)
    file = summary_file(p.parent if p.is_file() else p)
    try:
        return None if file is None else Provenance.from_dict(read_json_object(file)[SUMMARY_KEY])
    except (KeyError, TypeError, ValueError, AttributeError):  # JsonFileError is a ValueError
        return None


def write_json_atomic(path: str | Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _hf_rows(shards: list[tuple[str, int, int]]) -> Iterator[dict[str, Any]]:
    for path, _size, _mtime in shards:  # size and mtime only key the cache (see to_hf_dataset)
        for doc in iter_documents([path]):
            yield {
                "id": doc.id,
                "mode": doc.mode,
                "n_tokens": len(doc),
                "input_ids": doc.input_ids,
                "roles": doc.roles,
                "shard": Path(path).name,
                "meta": json.dumps(doc.meta, ensure_ascii=False),
            }


def to_hf_dataset(shard_dir: str | Path, cache_dir: str | Path | None = None) -> Any:
    """The documents of a shard folder as a Hugging Face ``datasets.Dataset`` for analysis: columns
    ``id``, ``mode``, ``n_tokens``, ``input_ids`` (int32), ``roles`` (uint8, :mod:`yue_train.format.roles`),
    ``shard`` and ``meta`` (the document's JSON). Written once as Arrow under ``cache_dir`` (default:
    the ``datasets`` cache) and memory-mapped; changed shards (size or time) are read again."""
    import datasets

    paths = shard_paths(shard_dir)
    keyed = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "mode": datasets.Value("string"),
            "n_tokens": datasets.Value("int64"),
            "input_ids": datasets.Sequence(datasets.Value("int32")),
            "roles": datasets.Sequence(datasets.Value("uint8")),
            "shard": datasets.Value("string"),
            "meta": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_generator(
        _hf_rows,
        features=features,
        gen_kwargs={"shards": keyed},
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
