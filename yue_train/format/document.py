"""A training document: token ids, one role per token, and metadata. The unit that sequence builders
produce, shards store and the packer lays into rows; it depends on numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Document:
    """One training document: token ids, a role per token, and metadata (``id`` and ``mode`` at least)."""

    input_ids: np.ndarray
    roles: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_ids = np.asarray(self.input_ids, dtype=np.int32)
        self.roles = np.asarray(self.roles, dtype=np.uint8)
        if self.input_ids.shape != self.roles.shape or self.input_ids.ndim != 1:
            raise ValueError(f"input_ids {self.input_ids.shape} and roles {self.roles.shape} must be equal 1-D")

    @property
    def id(self) -> str:
        return str(self.meta.get("id", ""))

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", ""))

    def __len__(self) -> int:
        return len(self.input_ids)
