"""The training data of one process: plan the global step, read only this process's rows, prefetch.

Every process runs the same planner (:mod:`.planner`, which says why the data path looks like this), so
the rows of a global step are the same, in the same order, whatever the world size (micro-batch ``j`` of a
step is rows ``[j*mb, (j+1)*mb)``; process ``r`` keeps ``j = r, r+W, ...``). Each process then reads, by
offset (:mod:`.doc_index`), only the documents its rows hold, so reading and decoding per process fall as
1/W. The position saved in a checkpoint is the planner's (plain data) plus the bad-document log, restored
directly: a resume late in an epoch costs the same as one at its start. Shards are read by offset, so
``data.train`` must name local shards; a URL is refused with a line that says to copy them.

A background thread (``prefetch``) plans and reads the next step while the current one trains. The saved
position is the one after the last step handed to the trainer, never after a prefetched one.

Bad documents: entries the index found damaged are skipped while planning (same log lines, same count on
every process). Damage found only when the document is read (checksum, dtypes, ranges, vocabulary) turns
that piece into padding (labels ignored); the processes then exchange what they found
(:meth:`TrainData.sync_bad_docs`, with the caller's gather) so every process holds the same log and count,
and ``data.max_bad_docs`` stops all of them together.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from yue_train.data.bad_docs import BadDocLog, print_to_stderr
from yue_train.data.doc_index import ShardIndex, has_index, load_index, read_document
from yue_train.data.packing import Batch, DataConfigError, PackedDoc, collate, resolve_urls
from yue_train.data.planner import Planner, RefSource, Row, ShardPlan
from yue_train.data.shard_reader import (
    BadDocument,
    ShardError,
    listed_checksum,
    listed_shard,
    open_shard,
    url_kind,
)
from yue_train.errors import first_line

Gather = Callable[[Any], list[Any]]  # every process's object, in rank order (all_gather_object)
OPEN_FILES = 64  # shard files kept open per process
INDEXES = 256  # shard indexes kept in memory (the cursor's, the shuffle buffer's and the rows' shards)
DECODED = 4  # decoded documents kept for the pieces that continue in a later row


def _alone(obj: Any) -> list[Any]:
    return [obj]


class ShardFiles:
    """Indexes and open files of the local shards of every dataset; reads documents by offset."""

    def __init__(self, urls: list[list[str]], vocab_size: int | None, index_dir: Path | None) -> None:
        self.urls, self.vocab_size, self.index_dir = urls, vocab_size, index_dir
        self.plan: Callable[[int, int], ShardPlan] = lru_cache(maxsize=INDEXES)(self._plan)
        self.files: OrderedDict[str, Any] = OrderedDict()
        self.docs_decoded = self.bytes_read = 0

    def _plan(self, src: int, shard: int) -> ShardPlan:
        url = self.urls[src][shard]
        try:
            index = load_index(url, self.index_dir)
        except (OSError, ShardError) as e:
            raise DataConfigError(f"{url}: {e}") from None
        return ShardPlan.of(url, index, listed_shard(url))

    def _fd(self, url: str) -> int:
        f = self.files.pop(url, None)
        if f is None:
            f = open_shard(url)
            while len(self.files) >= OPEN_FILES:
                self.files.popitem(last=False)[1].close()
        self.files[url] = f
        return f.fileno()

    def read(self, src: int, shard: int, entry: int) -> PackedDoc | BadDocument:
        plan = self.plan(src, shard)
        index: ShardIndex = plan.index
        try:
            want = listed_checksum(listed_shard(plan.url), entry)
            doc, n = read_document(self._fd(plan.url), index, entry, want, self.vocab_size)
        except (OSError, ValueError, TypeError) as e:
            return BadDocument(plan.url, str(index.keys[entry]), first_line(e))
        self.docs_decoded += 1
        self.bytes_read += n
        return PackedDoc.from_document(doc)

    def close(self) -> None:
        while self.files:
            self.files.popitem()[1].close()


@dataclass
class _Step:
    batches: list[Batch]
    planned_bad: list[BadDocument]  # met while planning: the same on every process
    read_bad: list[BadDocument]  # found reading this process's rows
    position: dict[str, Any]  # the planner's position after this step


class TrainData:
    """This process's micro-batches of each optimizer step (see the module docstring)."""

    def __init__(
        self,
        planner: Planner,
        files: ShardFiles,
        bad_docs: BadDocLog,
        micro_batch: int,
        n_micro: int,
        rank: int = 0,
        world: int = 1,
        prefetch: bool = True,
        gather: Gather = _alone,
    ) -> None:
        self.planner, self.files, self.bad_docs = planner, files, bad_docs
        self.micro_batch, self.n_micro, self.rank, self.world = micro_batch, n_micro, rank, world
        self.gather = gather
        self._position = planner.state_dict()
        self._doc: Callable[[int, int, int], PackedDoc | BadDocument] = lru_cache(maxsize=DECODED)(files.read)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="yue-data") if prefetch else None
        self._next: Future[_Step] | None = None
        self.step_bad: list[BadDocument] = []  # this process's read-time finds of the last step, until synced

    # ------------------------------------------------------------------------------------ reading
    def _row(self, row: Row, bad: list[BadDocument]) -> tuple[list[PackedDoc], int]:
        pieces, pad = row
        out = []
        for ref, a, b in pieces:
            doc = self._doc(*ref)
            if isinstance(doc, BadDocument):
                if doc not in bad:
                    bad.append(doc)
                out.append(PackedDoc.padding(b - a))  # in its place: its own positions, nothing predicted
            else:
                out.append(doc.piece(a, b))
        return out, pad

    def _make_step(self) -> _Step:
        planned_bad: list[BadDocument] = []
        count = self.bad_docs.count
        rows = [
            [self.planner.next_row(planned_bad, count) for _ in range(self.micro_batch)] for _ in range(self.n_micro)
        ]
        position = self.planner.state_dict()
        read_bad: list[BadDocument] = []
        seq_len = self.planner.seq_len
        mine = [
            collate([self._row(r, read_bad) for r in rows[j]], seq_len)
            for j in range(self.rank, self.n_micro, self.world)
        ]
        return _Step(mine, planned_bad, read_bad, position)

    # ---------------------------------------------------------------------------------- interface
    def next_step(self) -> list[Batch]:
        """This process's micro-batches of the next optimizer step (``n_micro / world`` of them)."""
        step = self._next.result() if self._next is not None else self._make_step()
        self._next = None
        self._position = step.position
        for b in step.planned_bad:
            self.bad_docs.add(b)
        self.step_bad = step.read_bad
        if self._pool is not None:
            self._next = self._pool.submit(self._make_step)
        return step.batches

    def sync_bad_docs(self, found_anywhere: bool | None = None) -> None:
        """Add every process's read-time finds of the last step to the log, in rank order (a collective:
        call it on every process). ``found_anywhere``: whether any process found one (from a sum the
        caller reduces anyway); None: gather unconditionally."""
        mine = [[b.shard, b.key, b.reason] for b in self.step_bad]
        self.step_bad = []
        if found_anywhere is False:
            return
        for found in self.gather(mine):
            for shard, key, why in found:
                self.bad_docs.add(BadDocument(shard, key, why))

    def _drop_prefetched(self) -> None:
        if self._next is not None:
            wait([self._next])  # a prefetched step is thrown away (an error in it too: its step never came)
            self._next = None

    def state_dict(self) -> dict[str, Any]:
        """The position after the last step :meth:`next_step` returned (plain data; the same on every process)."""
        return {**self._position, "bad_docs": self.bad_docs.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._drop_prefetched()
        fix = "resume with the data it was written with, or start over with trainer.resume=none"
        try:
            if state.get("format") != 2:
                raise DataConfigError(f"the checkpoint's data.pt holds no data position this version reads; {fix}")
            self.planner.load_state_dict(state)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise DataConfigError(
                f"the checkpoint's data position cannot be read ({type(e).__name__}: {e}); {fix}"
            ) from None
        except ValueError as e:
            if isinstance(e, DataConfigError):
                raise
            raise DataConfigError(f"the checkpoint's data position does not fit this data ({e}); {fix}") from None
        self.bad_docs.load_state_dict(state.get("bad_docs", []))
        self._position, self.step_bad = self.planner.state_dict(), []

    def stats(self) -> dict[str, int]:
        """Documents decoded and bytes read by this process so far (prefetched steps included)."""
        return {"docs_decoded": self.files.docs_decoded, "bytes_read": self.files.bytes_read}

    def close(self) -> None:
        self._drop_prefetched()
        if self._pool is not None:
            self._pool.shutdown()
        self.files.close()


def refuse_urls(urls: list[str]) -> None:
    """Training reads shards by offset: a URL (remote or command) is refused with what to do instead."""
    remote = next((u for u in urls if url_kind(u) != "local"), None)
    if remote is not None:
        raise DataConfigError(
            f"{remote} is a URL; training reads shards by offset from local files: copy the shards to a "
            "local folder (e.g. with gsutil, aws s3 or curl) and name that folder"
        )


def _dataset_urls(data_cfg: Any) -> list[list[str]]:
    allow = bool(data_cfg.allow_commands)
    urls = [resolve_urls(ds.path, allow) for ds in data_cfg.train]
    for dataset in urls:
        refuse_urls(dataset)
    return urls


def prepare_indexes(data_cfg: Any, index_dir: Path | None, rank: int = 0, world: int = 1) -> None:
    """Build the missing document indexes of ``data.train``'s local shards, every ``world``-th from the
    ``rank``-th (each process of a run a share, before they meet at a barrier). Problems are left for
    :func:`build_train_data` to report."""
    try:
        urls = _dataset_urls(data_cfg)
    except (DataConfigError, OSError):
        return
    for url in [u for dataset in urls for u in dataset][rank::world]:
        try:
            if not has_index(url, index_dir):
                load_index(url, index_dir)
        except (OSError, ValueError):
            continue


def build_train_data(
    data_cfg: Any,
    seed: int,
    vocab_size: int | None,
    weights: list[float],
    *,
    rank: int = 0,
    world: int = 1,
    grad_accum: int = 1,
    log: Callable[[str], None] | None = print_to_stderr,
    index_dir: Path | None = None,
    prefetch: bool = True,
    gather: Gather = _alone,
) -> TrainData:
    """The training data of ``cfg.data`` for process ``rank`` of ``world``: every ``data.train`` entry minus
    held-out documents, ``grad_accum * world`` micro-batches of ``data.batch_size`` rows per step.

    ``weights``: the mixture's draw weight per entry (the phase plan's). ``log`` prints the line of each bad
    document and notes (None: silent). ``index_dir``: where document indexes go when a shard folder is not
    writable. ``gather``: every process's object in rank order (for the bad-document exchange).
    """
    held_out = data_cfg.eval_fraction if not data_cfg.eval else 0.0
    split = "train" if held_out > 0 else "all"
    bad = BadDocLog(int(data_cfg.max_bad_docs), log=log)
    urls = _dataset_urls(data_cfg)
    names = [str(ds.path) for ds in data_cfg.train]
    files = ShardFiles(urls, vocab_size, index_dir)
    refs = [
        RefSource(names[i], len(u), (lambda s, i=i: files.plan(i, s)), seed=seed * 1000 + i,
                  shuffle_buffer=data_cfg.shuffle_buffer, split=split, eval_fraction=held_out)
        for i, u in enumerate(urls)
    ]  # fmt: skip
    planner = Planner(refs, list(weights), seed, data_cfg.seq_len, data_cfg.overflow)
    return TrainData(planner, files, bad, data_cfg.batch_size, grad_accum * world, rank, world, prefetch, gather)
