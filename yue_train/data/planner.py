"""The training data order: which pieces of which documents fill each row of a step, from references alone.

A run must give the same rows, in the same order, whatever the number of processes, resume exactly
(mid-epoch and across epoch ends, for mixtures of datasets), and scale: a resume must not re-read the data
up to its position, and each process must read only its share. So each dataset's order is a pure function
of (seed, epoch): the shard order is a permutation seeded per epoch, a shuffle buffer draws from a
generator seeded per epoch, documents are held out by the hash of their id (:func:`.packing.is_held_out`),
the mixture draws each next dataset from a seeded generator, and rows are filled by
:class:`.packing.RowFiller`. The planner runs that over references ``(dataset, shard, entry)`` and the token
counts of each shard's index (:mod:`.doc_index`); it reads no document, so planning a step costs a few
numbers per document and is identical on every process. :mod:`.train_data` then reads by offset only the
documents of this process's rows. Shards are read by offset, so they must be local files.

The position is plain data, restored directly (no replay): per dataset the epoch, the cursor (shard in the
epoch's order, entry in that shard), whether the shuffle buffer is draining, the buffer's references and
its generator's state; the mixture generator's state; the carried-over piece as
``(dataset, shard, entry, start, stop)``.

Why not torchdata's ``StatefulDataLoader`` or a stateful webdataset pipeline: they restore iterator state
per worker and per rank, so the global order depends on the number of workers and processes and a run
cannot resume under another world size at the same document. Why not a cache of pre-packed rows (step i
reads rows ``[i*G, (i+1)*G)``): it fixes ``seq_len``, ``overflow``, mixture weights and shuffling when the
cache is written, and stores a second copy of the corpus; the index is a few numbers per document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from yue_train.data.doc_index import ShardIndex
from yue_train.data.packing import DataConfigError, NoDocumentsError, RowFiller, is_held_out, no_documents
from yue_train.data.shard_reader import EXTRA_DOCUMENT, BadDocument, ListedShard, listed_checksum, short_shard

Ref = tuple[int, int, int]  # (dataset, shard, entry)
Piece = tuple[Ref, int, int]  # tokens [start, stop) of a document
Row = tuple[list[Piece], int]  # pieces and the padding at the row's end


@dataclass
class ShardPlan:
    """What planning needs of one shard: token counts, id hashes, entries to skip and records after them."""

    url: str
    index: ShardIndex
    bad: dict[int, BadDocument] = field(default_factory=dict)
    tail: list[BadDocument] = field(default_factory=list)

    @classmethod
    def of(cls, url: str, index: ShardIndex, listed: ListedShard | None) -> ShardPlan:
        plan = cls(url, index)
        for j in range(len(index)):
            if index.bad[j]:
                plan.bad[j] = BadDocument(url, str(index.keys[j]), str(index.bad[j]))
            elif listed_checksum(listed, j) == "":
                plan.bad[j] = BadDocument(url, str(index.keys[j]), EXTRA_DOCUMENT)
        short = short_shard(url, len(index), listed)
        if index.damage:
            plan.tail.append(BadDocument(url, index.damage_key, index.damage))
        elif short is not None:
            plan.tail.append(short)
        return plan

    @property
    def n_items(self) -> int:
        return len(self.index) + len(self.tail)


class RefSource:
    """One dataset's document references in their seeded order, looping over epochs (module docstring)."""

    def __init__(
        self,
        name: str,
        n_shards: int,
        shard: Callable[[int], ShardPlan],
        seed: int,
        shuffle_buffer: int = 0,
        split: str = "all",
        eval_fraction: float = 0.0,
    ) -> None:
        self.name, self.n_shards, self.shard = name, n_shards, shard
        self.seed, self.shuffle_buffer, self.split, self.eval_fraction = seed, shuffle_buffer, split, eval_fraction
        self._orders: dict[int, list[int]] = {}
        self._start_epoch(0)

    def _start_epoch(self, epoch: int) -> None:
        self.epoch, self.shard_pos, self.entry_pos, self.draining, self.consumed = epoch, 0, 0, False, 0
        self.buffer: list[tuple[int, int]] = []
        self.rng = np.random.default_rng([self.seed, epoch, 1])

    def _order(self) -> list[int]:
        order = self._orders.get(self.epoch)
        if order is None:
            if self.n_shards > 1:
                order = [int(i) for i in np.random.default_rng([self.seed, self.epoch, 0]).permutation(self.n_shards)]
            else:
                order = list(range(self.n_shards))
            self._orders = {self.epoch: order}
        return order

    def _keep(self, crc: int) -> bool:
        return self.split == "all" or is_held_out(crc, self.eval_fraction) == (self.split == "eval")

    def _draw(self) -> tuple[int, int]:
        buf = self.buffer
        j = int(self.rng.integers(len(buf)))
        buf[j], buf[-1] = buf[-1], buf[j]
        return buf.pop()

    def _next_in_epoch(self, bad: list[BadDocument]) -> tuple[int, int] | None:
        order = self._order()
        while not self.draining:
            if self.shard_pos >= len(order):
                self.draining = True
                break
            s = order[self.shard_pos]
            plan = self.shard(s)
            if self.entry_pos >= plan.n_items:
                self.shard_pos, self.entry_pos = self.shard_pos + 1, 0
                continue
            j = self.entry_pos
            self.entry_pos += 1
            n = len(plan.index)
            if j >= n:
                bad.append(plan.tail[j - n])
                continue
            if j in plan.bad:
                bad.append(plan.bad[j])
                continue
            if not self._keep(int(plan.index.id_crc[j])):
                continue
            if self.shuffle_buffer <= 1:
                return s, j
            self.buffer.append((s, j))
            if len(self.buffer) >= self.shuffle_buffer:
                return self._draw()
        return self._draw() if self.buffer else None

    def next_ref(self, bad: list[BadDocument], bad_count: int = 0) -> tuple[int, int]:
        """The next (shard, entry) of this dataset, starting a new epoch at the end of one; bad entries met on
        the way are appended to ``bad``."""
        for _ in range(2):
            ref = self._next_in_epoch(bad)
            if ref is not None:
                self.consumed += 1
                return ref
            if self.consumed == 0:
                raise no_documents(self.name, self.split, bad_count + len(bad))
            self._start_epoch(self.epoch + 1)
        raise NoDocumentsError(f"{self.name}: no {self.split} documents in epoch {self.epoch}")

    def state_dict(self) -> dict[str, Any]:
        return {
            "n_shards": self.n_shards, "epoch": self.epoch, "shard_pos": self.shard_pos,
            "entry_pos": self.entry_pos, "draining": self.draining, "consumed": self.consumed,
            "buffer": torch.tensor(self.buffer, dtype=torch.int64).reshape(-1, 2), "rng": self.rng.bit_generator.state,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n_shards"]) != self.n_shards:
            raise DataConfigError(
                f"{self.name}: {self.n_shards} shards now, {state['n_shards']} when the checkpoint was written; "
                "resume with the same data, or start over with trainer.resume=none"
            )
        self._start_epoch(int(state["epoch"]))
        self.shard_pos, self.entry_pos = int(state["shard_pos"]), int(state["entry_pos"])
        self.draining, self.consumed = bool(state["draining"]), int(state["consumed"])
        self.buffer = [(int(s), int(e)) for s, e in torch.as_tensor(state["buffer"]).reshape(-1, 2).tolist()]
        self.rng.bit_generator.state = state["rng"]
        refs = [
            *self.buffer,
            *([(self._order()[self.shard_pos], self.entry_pos)] if self.shard_pos < self.n_shards else []),
        ]
        if not 0 <= self.shard_pos <= self.n_shards or self.entry_pos < 0 or not all(self.fits(*r) for r in refs):
            raise ValueError("a position outside this data")

    def fits(self, shard: int, entry: int) -> bool:
        """Whether ``(shard, entry)`` names an item of this dataset (``entry`` may be one past the last)."""
        return 0 <= shard < self.n_shards and 0 <= entry <= self.shard(shard).n_items


class Planner:
    """Mixture draws over :class:`RefSource` s and :class:`.packing.RowFiller`'s rows, on references and lengths."""

    def __init__(
        self, sources: list[RefSource], weights: list[float], seed: int, seq_len: int, overflow: str = "next_row"
    ) -> None:
        if len(sources) != len(weights) or not sources:
            raise DataConfigError("data.train: need at least one dataset, each with a weight")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise DataConfigError(f"data.train weights must be >= 0 and not all 0, got {weights}")
        self.rows = RowFiller[Ref](seq_len, overflow)
        self.sources, self.p, self.seq_len = sources, w / w.sum(), seq_len
        self.rng = np.random.default_rng([seed, 2])

    def n_tokens(self, src: int, shard: int, entry: int) -> int:
        return int(self.sources[src].shard(shard).index.n_tokens[entry])

    def next_row(self, bad: list[BadDocument], bad_count: int = 0) -> Row:
        """The pieces and padding of the next row; bad entries met on the way are appended to ``bad``."""

        def next_doc() -> tuple[Ref, int]:
            i = int(self.rng.choice(len(self.sources), p=self.p)) if len(self.sources) > 1 else 0
            s, e = self.sources[i].next_ref(bad, bad_count)
            return (i, s, e), self.n_tokens(i, s, e)

        return self.rows.next_row(next_doc)

    def state_dict(self) -> dict[str, Any]:
        p = self.rows.pending
        return {
            "format": 2,
            "sources": [s.state_dict() for s in self.sources],
            "mixture_rng": self.rng.bit_generator.state,
            "pending": None if p is None else [*p[0], p[1], p[2]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["sources"]) != len(self.sources):
            raise DataConfigError(
                f"the checkpoint's data position covers {len(state['sources'])} datasets, data.train has "
                f"{len(self.sources)}; resume with the same data.train, or start over with trainer.resume=none"
            )
        for s, st in zip(self.sources, state["sources"], strict=True):
            s.load_state_dict(st)
        self.rng.bit_generator.state = state["mixture_rng"]
        self.rows.pending = None
        if state["pending"] is not None:
            src, s, e, a, b = (int(x) for x in state["pending"])
            if not (0 <= src < len(self.sources) and self.sources[src].fits(s, e) and 0 <= a < b):
                raise ValueError("a carried-over piece outside this data")
            if b != self.n_tokens(src, s, e):
                raise ValueError("a carried-over piece of another length")
            self.rows.pending = ((src, s, e), a, b)
