"""Packing: documents laid end to end into rows of ``seq_len`` tokens, and the batches rows make.

``position_ids`` restart at 0 at every document, which is what keeps documents apart in attention (see
:mod:`yue_train.training.forward`). Labels are shifted here, once, inside each document (the last token
of a document has no label), and the model is never given labels, so nothing shifts them again.
``target_roles`` is the role of each label token.

:class:`RowFiller` is the one row-filling rule: the training planner (:mod:`.planner`) applies it to
document references and lengths, :class:`Packer` to decoded documents (the held-out batches,
:func:`eval_batches`, and callers that pack documents they hold).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from webdataset.shardlists import expand_urls

from yue_train.data.bad_docs import BadDocLog
from yue_train.data.shard_reader import BadDocument, ShardError, check_url_allowed, iter_records, shard_paths, url_kind
from yue_train.format.document import Document

IGNORE_INDEX = -100
PAD_ID = 0  # any id the model has; its labels are ignored
DEFAULT_MAX_BAD_DOCS = 10
T = TypeVar("T")


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


def is_held_out(id_crc: int, fraction: float) -> bool:
    """Held-out membership by the crc32 of the document id: stable across runs, processes and shard layouts."""
    return fraction > 0 and id_crc % 10_000 < fraction * 10_000


def is_eval_doc(doc_id: str, fraction: float) -> bool:
    return is_held_out(zlib.crc32(doc_id.encode("utf-8")), fraction)


def no_documents(name: str, split: str, n_bad: int) -> NoDocumentsError:
    skipped = f"; {n_bad} bad documents skipped" if n_bad else ""
    return NoDocumentsError(f"{name}: no {split} documents (check the path and data.eval_fraction){skipped}")


@dataclass
class PackedDoc:
    """A document (or a piece of one) ready to pack: ids, next-token labels and the labels' roles."""

    input_ids: np.ndarray
    labels: np.ndarray
    target_roles: np.ndarray
    filler: bool = False  # padding in a document's place (a bad document found when read)

    @classmethod
    def from_document(cls, doc: Document) -> PackedDoc:
        ids = doc.input_ids.astype(np.int64)
        labels = np.full_like(ids, IGNORE_INDEX)
        labels[:-1] = ids[1:]
        roles = np.zeros(len(ids), dtype=np.int64)
        roles[:-1] = doc.roles[1:]
        return cls(ids, labels, roles)

    @classmethod
    def padding(cls, n: int) -> PackedDoc:
        """``n`` padding tokens: nothing predicted."""
        ids, labels = np.full(n, PAD_ID, dtype=np.int64), np.full(n, IGNORE_INDEX, dtype=np.int64)
        return cls(ids, labels, np.zeros(n, np.int64), filler=True)

    def __len__(self) -> int:
        return len(self.input_ids)

    def piece(self, start: int, stop: int) -> PackedDoc:
        return PackedDoc(
            self.input_ids[start:stop], self.labels[start:stop], self.target_roles[start:stop], self.filler
        )


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) int64
    position_ids: torch.Tensor  # (B, L) int64, restarting at 0 per document
    labels: torch.Tensor  # (B, L) int64, already shifted; IGNORE_INDEX where nothing is predicted
    target_roles: torch.Tensor  # (B, L) int64, role of each label token
    n_docs: int = 0
    n_padding: int = 0  # positions that hold no document: row ends, and fillers in place of bad documents

    def to(self, device: torch.device) -> Batch:
        tensors = (t.to(device, non_blocking=True) for t in self.tensors())
        return Batch(*tensors, n_docs=self.n_docs, n_padding=self.n_padding)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.input_ids, self.position_ids, self.labels, self.target_roles


class RowFiller(Generic[T]):
    """Fills rows of exactly ``seq_len`` tokens with pieces ``(item, start, stop)`` of items of known length.

    ``overflow="next_row"``: an item that does not fit the rest of a row starts the next row (the rest is
    padding, excluded from the loss); items longer than a row are cut into row-sized pieces.
    ``overflow="split"``: rows are filled completely, cutting items at row ends (no padding). Every piece
    restarts its positions at 0. ``pending`` is the rest of an item cut at the end of the last row.
    """

    def __init__(self, seq_len: int, overflow: str = "next_row") -> None:
        if overflow not in ("next_row", "split"):
            raise DataConfigError(f"data.overflow={overflow!r}; choose next_row or split")
        self.seq_len, self.overflow = seq_len, overflow
        self.pending: tuple[T, int, int] | None = None

    def next_row(self, next_item: Callable[[], tuple[T, int]]) -> tuple[list[tuple[T, int, int]], int]:
        """(pieces, padding) of one row; ``next_item`` gives (item, length) and raises StopIteration at the end,
        which ends the row, or propagates when the row is empty."""
        pieces: list[tuple[T, int, int]] = []
        space = self.seq_len
        while space > 0:
            if self.pending is None:
                try:
                    item, n = next_item()
                except StopIteration:
                    if not pieces:
                        raise
                    break
                if n == 0:
                    continue
                self.pending = (item, 0, n)
            item, a, b = self.pending
            if b - a <= space:
                pieces.append(self.pending)
                space -= b - a
                self.pending = None
            elif self.overflow == "split" or space == self.seq_len:
                pieces.append((item, a, a + space))
                self.pending = (item, a + space, b)
                space = 0
            else:
                break
        return pieces, space


class Packer:
    """Batches of rows (:class:`RowFiller`'s rule) from a document iterator."""

    def __init__(self, docs: Iterator[Document], seq_len: int, overflow: str = "next_row") -> None:
        self.docs, self.rows = docs, RowFiller[PackedDoc](seq_len, overflow)

    def _next_doc(self) -> tuple[PackedDoc, int]:
        doc = PackedDoc.from_document(next(self.docs))
        return doc, len(doc)

    def next_batch(self, batch_size: int) -> Batch:
        """Up to ``batch_size`` rows; raises StopIteration when the documents end and nothing is pending."""
        rows = []
        for _ in range(batch_size):
            try:
                pieces, pad = self.rows.next_row(self._next_doc)
            except StopIteration:
                if not rows:
                    raise
                break
            rows.append(([doc.piece(a, b) for doc, a, b in pieces], pad))
        return collate(rows, self.rows.seq_len)


def collate(rows: list[tuple[list[PackedDoc], int]], seq_len: int) -> Batch:
    n = len(rows)
    ids = np.full((n, seq_len), PAD_ID, dtype=np.int64)
    pos = np.zeros((n, seq_len), dtype=np.int64)
    labels = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    roles = np.zeros((n, seq_len), dtype=np.int64)
    n_docs = n_padding = 0
    for r, (pieces, pad) in enumerate(rows):
        at = 0
        n_padding += pad
        for piece in pieces:
            k = len(piece)
            n_padding += k if piece.filler else 0
            ids[r, at : at + k] = piece.input_ids
            pos[r, at : at + k] = np.arange(k)
            labels[r, at : at + k] = piece.labels
            roles[r, at : at + k] = piece.target_roles
            at += k
            n_docs += 1
        # Padding is its own "document" (positions from 0) so it never joins the last real one.
        pos[r, at:] = np.arange(pad)
    t = torch.from_numpy
    return Batch(t(ids), t(pos), t(labels), t(roles), n_docs=n_docs, n_padding=n_padding)


def _eval_docs(
    urls: list[str], split: str, fraction: float, vocab_size: int | None, name: str, bad: BadDocLog, allow: bool
) -> Iterator[Document]:
    """One dataset's documents in shard order, those of ``split`` ("all", or "eval" by id hash); bad ones are
    recorded in ``bad`` and skipped."""
    n = 0
    try:
        for item in iter_records(urls, allow, vocab_size):
            if isinstance(item, BadDocument):
                bad.add(item)
            elif split == "all" or is_eval_doc(item.id, fraction):
                n += 1
                yield item
    except (OSError, ShardError) as e:  # a shard that cannot be opened: not one document's problem
        raise DataConfigError(f"{name}: {e}") from None
    if n == 0:
        raise no_documents(name, split, bad.count)


def eval_batches(
    data_cfg: Any, max_batches: int, vocab_size: int | None = None, bad_docs: BadDocLog | None = None
) -> list[Batch]:
    """The held-out batches: ``data.eval`` datasets, or the id-hashed ``eval_fraction`` of ``data.train``.

    Deterministic (no shuffling, one pass in shard order), so every evaluation sees the same documents. Bad
    documents are skipped into ``bad_docs`` (the training data's, so a run counts them once).
    """
    allow = bool(data_cfg.allow_commands)
    if data_cfg.eval:
        entries, split, frac = list(data_cfg.eval), "all", 0.0
    elif data_cfg.eval_fraction > 0:
        entries, split, frac = list(data_cfg.train), "eval", data_cfg.eval_fraction
    else:
        return []
    bad = bad_docs if bad_docs is not None else BadDocLog(DEFAULT_MAX_BAD_DOCS)
    batches: list[Batch] = []
    for ds in entries:
        docs = _eval_docs(resolve_urls(ds.path, allow), split, frac, vocab_size, str(ds.path), bad, allow)
        packer = Packer(docs, data_cfg.seq_len, data_cfg.overflow)
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
