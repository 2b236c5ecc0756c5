"""Streaming packed batches from token shards, with an exactly restorable position.

Written by hand (not ``torch.utils.data.DataLoader`` + ``wds.WebDataset`` pipelines) because exact resume
needs the whole stream to be a pure function of (seed, epoch, documents consumed): each dataset's shard
order and shuffle buffer are seeded per epoch, the dataset mixture draws from a numpy generator whose
state is saved, and the packer's carried-over document is saved with it. Reading still goes through
webdataset (local paths or URLs). Resuming re-reads and skips the documents already consumed: no model
work, just I/O.

Packing: documents are laid end to end into rows of ``seq_len`` tokens. ``position_ids`` restart at 0 at
every document, which is what keeps documents apart in attention (see :mod:`.forward`). Labels are
shifted here, once, inside each document (the last token of a document has no label), and the model is
never given labels, so nothing shifts them again. ``target_roles`` is the role of each label token.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from webdataset.shardlists import expand_urls

from yue_train.data.shards import iter_documents, shard_paths
from yue_train.format.document import Document

IGNORE_INDEX = -100
PAD_ID = 0  # any id the model has; its labels are ignored
_REMOTE = ("http://", "https://", "pipe:", "s3://", "gs://")


class DataConfigError(ValueError):
    """A dataset entry that cannot be read; the message names it."""


class NoDocumentsError(DataConfigError):
    """A dataset (or its requested split) holds no documents."""


def resolve_urls(path: str | list[str]) -> list[str]:
    """Shard list of a dataset entry: a folder or .tar file (checked now), or URL(s) (opened later)."""
    items = [path] if isinstance(path, str) else list(path)
    urls: list[str] = []
    for item in items:
        item = str(item)
        if item.startswith(_REMOTE):
            urls.extend(expand_urls(item))  # "https://host/train-{000000..000099}.tar" -> 100 shard URLs
            continue
        try:
            urls.extend(shard_paths(item))
        except FileNotFoundError as e:
            raise DataConfigError(str(e)) from None
    return urls


def is_eval_doc(doc_id: str, fraction: float) -> bool:
    """Held-out membership by document id hash: stable across runs, workers and shard layouts."""
    return fraction > 0 and zlib.crc32(doc_id.encode("utf-8")) % 10_000 < fraction * 10_000


@dataclass
class PackedDoc:
    """A document (or a piece of one) ready to pack: ids, next-token labels and the labels' roles."""

    input_ids: np.ndarray
    labels: np.ndarray
    target_roles: np.ndarray

    @classmethod
    def from_document(cls, doc: Document) -> PackedDoc:
        ids = doc.input_ids.astype(np.int64)
        labels = np.full_like(ids, IGNORE_INDEX)
        labels[:-1] = ids[1:]
        roles = np.zeros(len(ids), dtype=np.int64)
        roles[:-1] = doc.roles[1:]
        return cls(ids, labels, roles)

    def __len__(self) -> int:
        return len(self.input_ids)

    def split(self, n: int) -> tuple[PackedDoc, PackedDoc]:
        return (
            PackedDoc(self.input_ids[:n], self.labels[:n], self.target_roles[:n]),
            PackedDoc(self.input_ids[n:], self.labels[n:], self.target_roles[n:]),
        )


class DocSource:
    """One dataset's documents in a seeded order: shard order and a shuffle buffer drawn per epoch.

    ``loop=True`` (training) starts a new epoch at the end; ``split`` keeps "train" or "eval" documents by
    id hash (``eval_fraction``), or "all". Every process reads every document: the trainer packs one
    global batch on each process and gives each its share (so the order does not depend on world size).
    """

    def __init__(
        self,
        urls: list[str],
        seed: int,
        shuffle_buffer: int = 0,
        split: str = "all",
        eval_fraction: float = 0.0,
        loop: bool = True,
        vocab_size: int | None = None,
        name: str = "",
    ) -> None:
        self.urls, self.seed, self.shuffle_buffer = list(urls), seed, shuffle_buffer
        self.split, self.eval_fraction, self.loop = split, eval_fraction, loop
        self.vocab_size = vocab_size
        self.name = name or (self.urls[0] if self.urls else "?")
        self.epoch, self.consumed = 0, 0
        self._it: Iterator[Document] | None = None

    def _keep(self, doc: Document) -> bool:
        if self.split == "all":
            return True
        return is_eval_doc(doc.id, self.eval_fraction) == (self.split == "eval")

    def _epoch_docs(self, epoch: int) -> Iterator[Document]:
        urls = self.urls
        if self.loop and len(urls) > 1:
            order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(urls))
            urls = [urls[i] for i in order]
        rng = np.random.default_rng([self.seed, epoch, 1])
        buf: list[Document] = []
        for doc in iter_documents(urls):
            if not self._keep(doc):
                continue
            if self.shuffle_buffer <= 1:
                yield doc
                continue
            buf.append(doc)
            if len(buf) >= self.shuffle_buffer:
                j = int(rng.integers(len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        while buf:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()

    def _check(self, doc: Document) -> Document:
        if self.vocab_size is not None and len(doc) and int(doc.input_ids.max()) >= self.vocab_size:
            raise DataConfigError(
                f"{self.name}: document {doc.id!r} has token id {int(doc.input_ids.max())} but the model has "
                f"{self.vocab_size} embedding rows (tokenizer/model vocabulary mismatch)"
            )
        return doc

    def __next__(self) -> Document:
        for _ in range(2):
            if self._it is None:
                self._it = self._epoch_docs(self.epoch)
            for doc in self._it:
                self.consumed += 1
                return self._check(doc)
            if self.consumed == 0:
                raise NoDocumentsError(
                    f"{self.name}: no {self.split} documents (check the path and data.eval_fraction)"
                )
            if not self.loop:
                raise StopIteration
            self.epoch, self.consumed, self._it = self.epoch + 1, 0, None
        raise NoDocumentsError(f"{self.name}: no {self.split} documents in epoch {self.epoch}")

    def __iter__(self) -> DocSource:
        return self

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed, self._it = int(state["epoch"]), 0, None
        self._it = self._epoch_docs(self.epoch)
        for _ in range(int(state["consumed"])):
            next(self._it)
            self.consumed += 1


class Mixture:
    """Draws each next document from one of several sources with the given weights (seeded, restorable)."""

    def __init__(self, sources: list[DocSource], weights: list[float], seed: int) -> None:
        if len(sources) != len(weights) or not sources:
            raise DataConfigError("data.train: need at least one dataset, each with a weight")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise DataConfigError(f"data.train weights must be >= 0 and not all 0, got {weights}")
        self.sources, self.p = sources, w / w.sum()
        self.rng = np.random.default_rng([seed, 2])

    def __next__(self) -> Document:
        i = int(self.rng.choice(len(self.sources), p=self.p)) if len(self.sources) > 1 else 0
        return next(self.sources[i])

    def __iter__(self) -> Mixture:
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "sources": [s.state_dict() for s in self.sources]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for s, st in zip(self.sources, state["sources"], strict=True):
            s.load_state_dict(st)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) int64
    position_ids: torch.Tensor  # (B, L) int64, restarting at 0 per document
    labels: torch.Tensor  # (B, L) int64, already shifted; IGNORE_INDEX where nothing is predicted
    target_roles: torch.Tensor  # (B, L) int64, role of each label token
    n_docs: int = 0

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in self.tensors()), n_docs=self.n_docs)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.input_ids, self.position_ids, self.labels, self.target_roles

    @property
    def n_label_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


class Packer:
    """Rows of exactly ``seq_len`` tokens from a document iterator.

    ``overflow="next_row"``: a document that does not fit the rest of a row starts the next row (the rest
    is padding, excluded from the loss); documents longer than a row are cut into row-sized pieces.
    ``overflow="split"``: rows are filled completely, cutting documents at row ends (no padding). Every
    piece restarts its positions at 0.
    """

    def __init__(self, docs: Iterator[Document], seq_len: int, overflow: str = "next_row") -> None:
        if overflow not in ("next_row", "split"):
            raise DataConfigError(f"data.overflow={overflow!r}; choose next_row or split")
        self.docs, self.seq_len, self.overflow = docs, seq_len, overflow
        self.pending: PackedDoc | None = None

    def next_row(self) -> tuple[list[PackedDoc], int]:
        """(pieces, padding) of one row; raises StopIteration when the documents end and nothing is pending."""
        pieces: list[PackedDoc] = []
        space = self.seq_len
        while space > 0:
            if self.pending is None:
                try:
                    self.pending = PackedDoc.from_document(next(self.docs))
                except StopIteration:
                    if not pieces:
                        raise
                    break
                if len(self.pending) == 0:
                    self.pending = None
                    continue
            doc = self.pending
            if len(doc) <= space:
                pieces.append(doc)
                space -= len(doc)
                self.pending = None
            elif self.overflow == "split" or space == self.seq_len:
                head, self.pending = doc.split(space)
                pieces.append(head)
                space = 0
            else:
                break
        return pieces, space

    def next_batch(self, batch_size: int) -> Batch:
        rows = []
        for _ in range(batch_size):
            try:
                rows.append(self.next_row())
            except StopIteration:
                if not rows:
                    raise
                break
        return collate(rows, self.seq_len)

    def state_dict(self) -> dict[str, Any]:
        p = self.pending
        return {"pending": None if p is None else (p.input_ids, p.labels, p.target_roles)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = state["pending"]
        self.pending = None if p is None else PackedDoc(*(np.asarray(a) for a in p))


def collate(rows: list[tuple[list[PackedDoc], int]], seq_len: int) -> Batch:
    n = len(rows)
    ids = np.full((n, seq_len), PAD_ID, dtype=np.int64)
    pos = np.zeros((n, seq_len), dtype=np.int64)
    labels = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    roles = np.zeros((n, seq_len), dtype=np.int64)
    n_docs = 0
    for r, (pieces, pad) in enumerate(rows):
        at = 0
        for piece in pieces:
            k = len(piece)
            ids[r, at : at + k] = piece.input_ids
            pos[r, at : at + k] = np.arange(k)
            labels[r, at : at + k] = piece.labels
            roles[r, at : at + k] = piece.target_roles
            at += k
            n_docs += 1
        # Padding is its own "document" (positions from 0) so it never joins the last real one.
        pos[r, at:] = np.arange(pad)
    t = torch.from_numpy
    return Batch(t(ids), t(pos), t(labels), t(roles), n_docs=n_docs)


class PackedStream:
    """Mixture -> Packer -> batches, with one state dict for exact resume."""

    def __init__(self, mixture: Mixture, seq_len: int, batch_size: int, overflow: str = "next_row") -> None:
        self.mixture = mixture
        self.packer = Packer(mixture, seq_len, overflow)
        self.batch_size = batch_size

    def next_batch(self) -> Batch:
        return self.packer.next_batch(self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {"mixture": self.mixture.state_dict(), "packer": self.packer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mixture.load_state_dict(state["mixture"])
        self.packer.load_state_dict(state["packer"])


def build_train_stream(data_cfg: Any, seed: int, vocab_size: int | None, weights: list[float]) -> PackedStream:
    """The training stream of ``cfg.data``: every ``data.train`` entry, minus held-out documents.

    ``weights``: the mixture's draw weight per entry (the phase plan's, which turns ``weight`` or ``rounds``
    into draw probabilities).
    """
    held_out = data_cfg.eval_fraction if not data_cfg.eval else 0.0
    sources = []
    for i, ds in enumerate(data_cfg.train):
        sources.append(
            DocSource(
                resolve_urls(ds.path),
                seed=seed * 1000 + i,
                shuffle_buffer=data_cfg.shuffle_buffer,
                split="train" if held_out > 0 else "all",
                eval_fraction=held_out,
                loop=True,
                vocab_size=vocab_size,
                name=str(ds.path),
            )
        )
    return PackedStream(Mixture(sources, list(weights), seed), data_cfg.seq_len, data_cfg.batch_size, data_cfg.overflow)


def eval_batches(data_cfg: Any, max_batches: int, vocab_size: int | None = None) -> list[Batch]:
    """The held-out batches: ``data.eval`` datasets, or the id-hashed ``eval_fraction`` of ``data.train``.

    Deterministic (no shuffling, one pass), so every evaluation sees the same documents.
    """
    if data_cfg.eval:
        entries, split, frac = list(data_cfg.eval), "all", 0.0
    elif data_cfg.eval_fraction > 0:
        entries, split, frac = list(data_cfg.train), "eval", data_cfg.eval_fraction
    else:
        return []
    batches: list[Batch] = []
    for i, ds in enumerate(entries):
        src = DocSource(
            resolve_urls(ds.path), seed=i, split=split, eval_fraction=frac, loop=False,
            vocab_size=vocab_size, name=str(ds.path),
        )  # fmt: skip
        packer = Packer(src, data_cfg.seq_len, data_cfg.overflow)
        try:
            while len(batches) < max_batches:
                batches.append(packer.next_batch(data_cfg.batch_size))
        except StopIteration:
            pass
        except NoDocumentsError:
            if split == "eval":  # this dataset has no held-out documents: fine, others may
                continue
            raise
    return batches
