"""Chunked next-token cross-entropy with per-role weights, and per-role loss / accuracy sums.

Full logits of an 8,192-token row over 83,968 ids are 2.75 GB in fp32 (plus as much again for their
gradient). Here logits exist for ``chunk_size`` positions at a time: each chunk's ``lm_head`` projection,
fp32 upcast and cross-entropy run under activation checkpointing, so only the chunk's hidden states are
kept for backward and the chunk's logits are recomputed there. Calling the ``lm_head`` module (not its
weight) keeps this right for any wrapper around it (LoRA, 4-bit). Hand-written because no installed
library does chunked CE with per-token weights *and* per-role accuracy; a fused kernel (Liger) could
replace :func:`_chunk_ce` on GPU.

Labels arrive already shifted (see :mod:`.data`); nothing here shifts again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from yue_train.data.packing import IGNORE_INDEX
from yue_train.format.roles import ROLE_NAMES

N_ROLES = len(ROLE_NAMES)


@dataclass
class LossSums:
    """Sums over one or more micro-batches; divide by ``weight_sum`` / per-role counts to report."""

    weighted: torch.Tensor  # sum of weight * CE (carries grad during training)
    weight_sum: torch.Tensor
    role_loss: torch.Tensor  # (N_ROLES,) sum of unweighted CE per target role
    role_correct: torch.Tensor  # (N_ROLES,) argmax hits
    role_count: torch.Tensor  # (N_ROLES,) label tokens

    def detached(self) -> LossSums:
        return LossSums(
            *(t.detach() for t in (self.weighted, self.weight_sum, self.role_loss, self.role_correct, self.role_count))
        )

    def __add__(self, other: LossSums) -> LossSums:
        return LossSums(
            self.weighted + other.weighted,
            self.weight_sum + other.weight_sum,
            self.role_loss + other.role_loss,
            self.role_correct + other.role_correct,
            self.role_count + other.role_count,
        )

    def as_vector(self) -> torch.Tensor:
        """One flat fp64 tensor (for a single all-reduce across ranks)."""
        parts = [
            self.weighted.reshape(1),
            self.weight_sum.reshape(1),
            self.role_loss,
            self.role_correct,
            self.role_count,
        ]
        return torch.cat([p.detach().double() for p in parts])

    @classmethod
    def from_vector(cls, v: torch.Tensor) -> LossSums:
        r = N_ROLES
        return cls(v[0], v[1], v[2 : 2 + r], v[2 + r : 2 + 2 * r], v[2 + 2 * r : 2 + 3 * r])

    def report(self, prefix: str = "") -> dict[str, float]:
        """``loss`` (weighted mean), ``loss/<role>`` and ``acc/<role>`` for every role that occurs."""
        out = {f"{prefix}loss": float(self.weighted / self.weight_sum.clamp(min=1e-12))}
        for i, name in ROLE_NAMES.items():
            n = float(self.role_count[i])
            if n > 0:
                out[f"{prefix}loss/{name}"] = float(self.role_loss[i]) / n
                out[f"{prefix}acc/{name}"] = float(self.role_correct[i]) / n
        return out


def role_weight_table(role_weights: Mapping[str, float], device: torch.device | None = None) -> torch.Tensor:
    """(N_ROLES,) loss weight per role from ``{role name: weight}`` (0 masks; a role not named weighs 1, so
    ``{}`` weighs all alike). Training passes ``trainer.loss.role_weights``, which names every role."""
    table = torch.ones(N_ROLES, dtype=torch.float32, device=device)
    by_name = {name: i for i, name in ROLE_NAMES.items()}
    for name, w in role_weights.items():
        if name not in by_name:
            raise ValueError(f"unknown role {name!r} in loss role weights; roles: {', '.join(by_name)}")
        table[by_name[name]] = float(w)
    return table


def _chunk_ce(lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, w: torch.Tensor):
    logits = lm_head(h).float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    hits = logits.argmax(dim=-1) == labels
    return (ce * w).sum(), ce.detach(), hits


def chunked_loss(
    hidden: torch.Tensor,
    lm_head: nn.Module,
    labels: torch.Tensor,
    target_roles: torch.Tensor,
    weight_table: torch.Tensor,
    chunk_size: int = 1024,
) -> LossSums:
    """Loss sums of a batch from its final hidden states ``(B, L, H)`` and shifted ``labels`` ``(B, L)``."""
    h = hidden.reshape(-1, hidden.shape[-1])
    labels = labels.reshape(-1)
    roles = target_roles.reshape(-1)
    keep = (labels != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    h, labels, roles = h[keep], labels[keep], roles[keep]
    weights = weight_table.to(h.device)[roles]
    dev = h.device
    weighted = torch.zeros((), device=dev, dtype=torch.float32)
    role_loss = torch.zeros(N_ROLES, device=dev, dtype=torch.float64)
    role_correct = torch.zeros(N_ROLES, device=dev, dtype=torch.float64)
    # A single chunk gains nothing from checkpointing (its logits are all there are): skip the recompute.
    use_ckpt = torch.is_grad_enabled() and h.requires_grad and h.shape[0] > chunk_size
    for s in range(0, h.shape[0], chunk_size):
        sl = slice(s, s + chunk_size)
        if use_ckpt:
            part, ce, hits = checkpoint(_chunk_ce, lm_head, h[sl], labels[sl], weights[sl], use_reentrant=False)
        else:
            part, ce, hits = _chunk_ce(lm_head, h[sl], labels[sl], weights[sl])
        weighted = weighted + part
        role_loss.index_add_(0, roles[sl], ce.double())
        role_correct.index_add_(0, roles[sl], hits.double())
    role_count = torch.bincount(roles, minlength=N_ROLES).double()
    return LossSums(weighted, weights.sum().double(), role_loss, role_correct, role_count)
