"""Packed batches from token shards: the packing rule, and the streaming reader.

Training data path (why it looks like this): a run must give the same rows, in the same order, whatever
the number of processes, resume exactly (mid-epoch and across epoch ends, for mixtures of datasets), and
scale: a resume must not re-read the data up to its position, and each process must read only its share.
The design: each dataset's order is a pure function of (seed, epoch): shard order and shuffle buffer are
seeded per epoch, the mixture draws from a seeded generator, the packer fills rows by a fixed rule. For
local shards (:mod:`.train_data`) every process runs that procedure over document *references* and
lengths from a per-shard index (:mod:`.doc_index`, :mod:`.loader`), so planning a step costs a few numbers
per document and is identical everywhere; each process then reads by offset only the documents of its
own rows, and the position (cursors, shuffle-buffer references, generator states, the carried-over piece)
is saved and restored as plain data, with no replay. A background thread prepares the next step.

Why not torchdata's ``StatefulDataLoader`` or a stateful webdataset pipeline: they restore iterator state
per worker and per rank, so the global order depends on the number of workers and processes and a run
cannot resume under another world size at the same document. Why not a cache of pre-packed rows (step i
reads rows ``[i*G, (i+1)*G)``): it fixes ``seq_len``, ``overflow``, mixture weights and shuffling when the
cache is written, and stores a second copy of the corpus; the index is a few numbers per document.

This module keeps the procedure over decoded documents (:class:`DocSource`, :class:`Mixture`,
:class:`Packer`, :class:`PackedStream`): it reads URLs that cannot be read by offset (``https://``,
``pipe:``; every process reads everything and a resume re-reads and skips the documents consumed) and the
held-out batches (:func:`eval_batches`). Bad documents (damaged, failing their checksum, ids out of the
model's vocabulary, ...) are skipped and recorded in a :class:`~yue_train.data.bad_docs.BadDocLog`, saved
with the position; they never count as consumed.

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

from yue_train.data.bad_docs import BadDocLog
from yue_train.data.shard_reader import BadDocument, ShardError, check_url_allowed, iter_records, shard_paths, url_kind
from yue_train.format.document import Document

IGNORE_INDEX = -100
PAD_ID = 0  # any id the model has; its labels are ignored
DEFAULT_MAX_BAD_DOCS = 10


class DataConfigError(ValueError):
    """A dataset entry that cannot be read; the message names it."""


class NoDocumentsError(DataConfigError):
    """A dataset (or its requested split) holds no documents."""


def resolve_urls(path: str | list[str], allow_commands: bool = False) -> list[str]:
    """Shard list of a dataset entry: a folder or .tar file (checked now, with the folder's summary), or
    URL(s) (opened later); command URLs (``pipe:``) only with ``allow_commands``."""
    items = [path] if isinstance(path, str) else list(path)
    urls: list[str] = []
    for item in items:
        item = str(item)
        try:
            if url_kind(item) != "local":
                check_url_allowed(item, allow_commands)
                urls.extend(expand_urls(item))  # "https://host/train-{000000..000099}.tar" -> 100 shard URLs
                continue
            urls.extend(shard_paths(item))
        except (FileNotFoundError, ShardError) as e:
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
    id hash (``eval_fraction``), or "all". Every process reads every document: the caller packs one
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
        bad_docs: BadDocLog | None = None,
        allow_commands: bool = False,
    ) -> None:
        self.urls, self.seed, self.shuffle_buffer = list(urls), seed, shuffle_buffer
        self.split, self.eval_fraction, self.loop = split, eval_fraction, loop
        self.vocab_size = vocab_size
        self.name = name or (self.urls[0] if self.urls else "?")
        self.bad_docs = bad_docs if bad_docs is not None else BadDocLog(DEFAULT_MAX_BAD_DOCS)
        self.allow_commands = allow_commands
        self.epoch, self.consumed = 0, 0
        self._it: Iterator[Document | BadDocument] | None = None

    def _keep(self, doc: Document) -> bool:
        if self.split == "all":
            return True
        return is_eval_doc(doc.id, self.eval_fraction) == (self.split == "eval")

    def _epoch_docs(self, epoch: int) -> Iterator[Document | BadDocument]:
        urls = self.urls
        if self.loop and len(urls) > 1:
            order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(urls))
            urls = [urls[i] for i in order]
        rng = np.random.default_rng([self.seed, epoch, 1])
        buf: list[Document] = []
        for item in self._records(urls):
            if isinstance(item, BadDocument):
                yield item  # past the shuffle buffer: it only needs reporting
                continue
            doc = item
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

    def _records(self, urls: list[str]) -> Iterator[Document | BadDocument]:
        try:
            yield from iter_records(urls, self.allow_commands, self.vocab_size)
        except (OSError, ShardError) as e:  # a shard that cannot be opened: not one document's problem
            raise DataConfigError(f"{self.name}: {e}") from None

    def _next_document(self) -> Document | None:
        """The next document of this epoch (bad ones recorded and skipped); None at the epoch's end."""
        assert self._it is not None
        for item in self._it:
            if isinstance(item, BadDocument):
                self.bad_docs.add(item)
                continue
            self.consumed += 1
            return item
        return None

    def __next__(self) -> Document:
        for _ in range(2):
            if self._it is None:
                self._it = self._epoch_docs(self.epoch)
            doc = self._next_document()
            if doc is not None:
                return doc
            if self.consumed == 0:
                skipped = f"; {self.bad_docs.count} bad documents skipped" if self.bad_docs.count else ""
                raise NoDocumentsError(
                    f"{self.name}: no {self.split} documents (check the path and data.eval_fraction){skipped}"
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
            if self._next_document() is None:
                raise DataConfigError(f"{self.name}: the data changed since the checkpoint (fewer documents)")


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
    """Mixture -> Packer -> batches, with one state dict for exact resume (bad documents included)."""

    def __init__(
        self,
        mixture: Mixture,
        seq_len: int,
        batch_size: int,
        overflow: str = "next_row",
        bad_docs: BadDocLog | None = None,
    ) -> None:
        self.mixture = mixture
        self.packer = Packer(mixture, seq_len, overflow)
        self.batch_size = batch_size
        self.bad_docs = bad_docs if bad_docs is not None else mixture.sources[0].bad_docs

    def next_batch(self) -> Batch:
        return self.packer.next_batch(self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mixture": self.mixture.state_dict(),
            "packer": self.packer.state_dict(),
            "bad_docs": self.bad_docs.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bad_docs.load_state_dict(state.get("bad_docs", []))  # first: the replay meets them again
        self.mixture.load_state_dict(state["mixture"])
        self.packer.load_state_dict(state["packer"])


def eval_batches(
    data_cfg: Any, max_batches: int, vocab_size: int | None = None, bad_docs: BadDocLog | None = None
) -> list[Batch]:
    """The held-out batches: ``data.eval`` datasets, or the id-hashed ``eval_fraction`` of ``data.train``.

    Deterministic (no shuffling, one pass), so every evaluation sees the same documents. Bad documents are
    skipped into ``bad_docs`` (the training stream's, so a run counts them once).
    """
    allow = bool(data_cfg.allow_commands)
    if data_cfg.eval:
        entries, split, frac = list(data_cfg.eval), "all", 0.0
    elif data_cfg.eval_fraction > 0:
        entries, split, frac = list(data_cfg.train), "eval", data_cfg.eval_fraction
    else:
        return []
    batches: list[Batch] = []
    for i, ds in enumerate(entries):
        src = DocSource(
            resolve_urls(ds.path, allow), seed=i, split=split, eval_fraction=frac, loop=False,
            vocab_size=vocab_size, name=str(ds.path), bad_docs=bad_docs, allow_commands=allow,
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
