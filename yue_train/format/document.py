"""A training document: token ids, one role per token, and metadata. The unit that sequence builders
produce, shards store and the packer lays into rows; it depends on numpy and the role list only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yue_train.format.roles import Role

TOKEN_ID_LIMIT = 2**31  # ids are stored as int32
N_ROLES = len(Role)


def _in_range(values: np.ndarray, name: str, limit: int) -> np.ndarray:
    """``values`` if they are integers in [0, limit); ``ValueError`` naming the problem otherwise."""
    if values.size == 0:
        return values
    if values.dtype.kind not in "iu":
        raise ValueError(f"{name} has dtype {values.dtype}; integers expected")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= limit:
        raise ValueError(f"{name} has values in [{low}, {high}]; allowed 0..{limit - 1}")
    return values


@dataclass
class Document:
    """One training document: token ids, a role per token, and metadata (``id`` and ``mode`` at least)."""

    input_ids: np.ndarray
    roles: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids, roles = np.asarray(self.input_ids), np.asarray(self.roles)
        if ids.shape != roles.shape or ids.ndim != 1:
            raise ValueError(f"input_ids {ids.shape} and roles {roles.shape} must be equal 1-D")
        # Checked before the casts, which would wrap large or negative values into valid-looking ones.
        self.input_ids = _in_range(ids, "input_ids", TOKEN_ID_LIMIT).astype(np.int32, copy=False)
        self.roles = _in_range(roles, "roles", N_ROLES).astype(np.uint8, copy=False)

    @property
    def id(self) -> str:
        return str(self.meta.get("id", ""))

    @property
    def mode(self) -> str:
        return str(self.meta.get("mode", ""))

    def __len__(self) -> int:
        return len(self.input_ids)
