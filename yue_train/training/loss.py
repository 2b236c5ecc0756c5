"""Next-token cross-entropy with per-role weights, and per-role loss / accuracy sums.

Full logits of an 8,192-token row over 83,968 ids are 2.75 GB in fp32, and plain cross-entropy holds
about three tensors of that size at once (logits or log-probabilities, their gradient, and the softmax
in backward). :func:`lm_loss` computes the loss one of four ways (:mod:`.loss_impls`), named by
``trainer.loss.impl``; ``auto`` chooses per call, from ``N`` (label positions), ``V`` (vocabulary),
``H`` (hidden size) and ``C = min(chunk_size, N)``, against ``memory_budget_gib``:

1. ``fused`` when the device is CUDA, liger-kernel is installed and ``lm_head`` is a plain ``nn.Linear``;
2. else ``full`` when ``3 x N x V x 4`` bytes fit the budget;
3. else ``chunked`` (no recompute) when ``2 x C x V x 4 + N x H x 4`` bytes, plus 4 bytes per trainable
   ``lm_head`` parameter, fit the budget and no ``lm_head`` parameter is partitioned by DeepSpeed ZeRO-3;
4. else ``chunked_recompute`` (``lm_head`` runs twice, only the hidden states are kept).

Without gradients (evaluation) ``chunked`` and ``chunked_recompute`` are the same chunked forward.
Labels arrive already shifted (see :mod:`yue_train.data.packing`); nothing here shifts again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from yue_train.data.packing import IGNORE_INDEX
from yue_train.format.roles import ROLE_NAMES
from yue_train.training import loss_impls

N_ROLES = len(ROLE_NAMES)


@dataclass
class LossSums:
    """Sums over one or more micro-batches; divide by ``weight_sum`` / per-role counts to report."""

    weighted: torch.Tensor  # sum of weight * CE (carries grad during training)
    weight_sum: torch.Tensor
    role_loss: torch.Tensor  # (N_ROLES,) sum of unweighted CE per target role
    role_correct: torch.Tensor  # (N_ROLES,) argmax hits
    role_count: torch.Tensor  # (N_ROLES,) label tokens

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def detached(self) -> LossSums:
        return LossSums(*(t.detach() for t in self.tensors()))

    def __add__(self, other: LossSums) -> LossSums:
        return LossSums(*(a + b for a, b in zip(self.tensors(), other.tensors(), strict=True)))

    def as_vector(self) -> torch.Tensor:
        """One flat fp64 tensor (for a single all-reduce across ranks)."""
        return torch.cat([t.detach().double().reshape(-1) for t in self.tensors()])

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


LOSS_IMPLS = ("auto", "full", "chunked", "chunked_recompute", "fused")
IMPL_FNS = {
    "full": loss_impls.full_ce,
    "chunked": loss_impls.chunked_ce,
    "chunked_recompute": loss_impls.chunked_recompute_ce,
}


@dataclass(frozen=True)
class LossSettings:
    """How :func:`lm_loss` computes the loss (the ``trainer.loss`` keys of the same names)."""

    impl: str = "auto"
    chunk_size: int = 1024
    memory_budget_gib: float = 1.0

    def __post_init__(self) -> None:
        if self.impl not in LOSS_IMPLS:
            raise ValueError(f"trainer.loss.impl must be one of {', '.join(LOSS_IMPLS)}, got {self.impl!r}")
        if self.chunk_size < 1 or self.memory_budget_gib <= 0:
            raise ValueError("trainer.loss.chunk_size must be >= 1 and trainer.loss.memory_budget_gib > 0")

    @classmethod
    def from_config(cls, loss_cfg: Any) -> LossSettings:
        """From the ``trainer.loss`` config node."""
        return cls(str(loss_cfg.impl), int(loss_cfg.chunk_size), float(loss_cfg.memory_budget_gib))


def _zero3_partitioned(params: list[nn.Parameter]) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


def choose_impl(settings: LossSettings, n: int, lm_head: nn.Module, hidden_size: int, device: torch.device) -> str:
    """The implementation ``settings.impl`` names, or for ``auto`` the first of the module docstring's rule."""
    if settings.impl != "auto":
        return settings.impl
    params = list(lm_head.parameters())
    vocab = int(getattr(lm_head, "out_features", 0) or params[0].shape[0])
    if device.type == "cuda" and type(lm_head) is nn.Linear and loss_impls.liger_available():
        return "fused"
    budget = settings.memory_budget_gib * 2**30
    if 3 * n * vocab * 4 <= budget:
        return "full"
    c = min(settings.chunk_size, n)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if 2 * c * vocab * 4 + n * hidden_size * 4 + trainable * 4 <= budget and not _zero3_partitioned(params):
        return "chunked"
    return "chunked_recompute"


def lm_loss(
    hidden: torch.Tensor,
    lm_head: nn.Module,
    labels: torch.Tensor,
    target_roles: torch.Tensor,
    weight_table: torch.Tensor,
    settings: LossSettings = LossSettings(),  # noqa: B008 (frozen dataclass)
) -> tuple[LossSums, str]:
    """Loss sums of a batch from its final hidden states ``(B, L, H)`` and shifted ``labels`` ``(B, L)``,
    and the name of the implementation that computed them."""
    h = hidden.reshape(-1, hidden.shape[-1])
    labels = labels.reshape(-1)
    roles = target_roles.reshape(-1)
    keep = (labels != IGNORE_INDEX).nonzero(as_tuple=True)[0]
    h, labels, roles = h[keep], labels[keep], roles[keep]
    table = weight_table.to(h.device)
    weights = table[roles]
    # No label positions: the plain path gives the zero sums without special cases.
    impl = choose_impl(settings, h.shape[0], lm_head, h.shape[-1], h.device) if h.shape[0] else "full"
    if impl == "chunked" and _zero3_partitioned(list(lm_head.parameters())):
        raise ValueError("trainer.loss.impl=chunked cannot run under DeepSpeed ZeRO-3; use auto or chunked_recompute")
    role_count = torch.bincount(roles, minlength=N_ROLES).double()
    if impl == "fused":
        weighted, role_loss, role_correct = loss_impls.fused_ce(lm_head, h, labels, roles, table)
    else:
        weighted, ce, hits = IMPL_FNS[impl](lm_head, h, labels, weights, settings.chunk_size)
        role_loss = torch.zeros(N_ROLES, device=h.device, dtype=torch.float64).index_add_(0, roles, ce.double())
        role_correct = torch.zeros_like(role_loss).index_add_(0, roles, hits.double())
    return LossSums(weighted, weights.sum().double(), role_loss, role_correct, role_count), impl
