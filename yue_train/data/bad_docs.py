"""The bad documents a training run has skipped: each counted once, logged in one line, bounded.

Every process holds the same log: damage found while planning is met by every process alike, damage found
while reading a process's own rows is exchanged between the processes after each step
(:mod:`.train_data`); only the process that logs prints. The trainer stops once the count exceeds
``data.max_bad_docs`` (after saving a checkpoint). The log is part of the data position, so a resumed run
keeps its count and does not report a document again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from yue_train.data.shard_reader import BadDocument


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BadDocLog:
    """Distinct bad documents by (shard, key), in the order met."""

    def __init__(self, limit: int, log: Callable[[str], None] | None = print_to_stderr) -> None:
        self.limit, self.log = int(limit), log
        self.found: dict[tuple[str, str], str] = {}

    @property
    def count(self) -> int:
        return len(self.found)

    def add(self, bad: BadDocument) -> None:
        where = (bad.shard, bad.key)
        if where in self.found:
            return
        self.found[where] = bad.reason
        if self.log is not None:
            self.log(f"skipped bad document {bad.describe()} ({self.count} of data.max_bad_docs={self.limit})")

    def over_limit(self) -> bool:
        return self.count > self.limit

    def stop_message(self) -> str:
        (shard, key), reason = next(reversed(self.found.items()))
        return (
            f"{self.count} bad documents skipped, more than data.max_bad_docs={self.limit} (last: {shard} [{key}]: "
            f"{reason}); fix or remove the damaged shards (yue-prep tokenize rewrites them), or raise data.max_bad_docs"
        )

    def state_dict(self) -> list[list[str]]:
        return [[shard, key, reason] for (shard, key), reason in self.found.items()]

    def load_state_dict(self, state: list[Any]) -> None:
        self.found = {(str(s), str(k)): str(r) for s, k, r in state}
