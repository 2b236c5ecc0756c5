"""Numbers read back from a checkpoint, checked where they enter: the step counts of ``trainer_state.json``
and the optimizer's and scheduler's hyperparameters (learning rates, betas, eps, weight decay, loss scale).

A resumed run that took a NaN learning rate from a damaged state would train on, save NaN weights and
exit 0; a negative or fractional step would skip or repeat data silently. Each check returns the problem
as a phrase naming the value (None when all is in range), for the caller to refuse or fall back."""

from __future__ import annotations

import math
from typing import Any

COUNTS = ("step", "tokens_seen", "row_tokens", "padding_tokens", "skipped_steps")
OPTIONAL_COUNTS = ("world_size", "global_batch_size")
GROUP_NUMBERS = ("lr", "initial_lr", "eps", "weight_decay")
MAX_COUNT = 1 << 62


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def trainer_state_problem(state: Any) -> str | None:
    """What is wrong with a parsed ``trainer_state.json`` (counts non-negative integers), or None."""
    if not isinstance(state, dict):
        return "holds no JSON object"
    for key in COUNTS:
        if key not in state:
            return f"has no {key!r}"
        if not _count(state[key]):
            return f"{key}={state[key]!r} is not a non-negative integer"
    for key in OPTIONAL_COUNTS:
        if key in state and not _count(state[key]):
            return f"{key}={state[key]!r} is not a non-negative integer"
    roles = state.get("role_tokens", {})
    if not isinstance(roles, dict) or not all(isinstance(k, str) and _count(v) for k, v in roles.items()):
        return "role_tokens is not a map of role names to non-negative integers"
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def optimizer_problem(optimizer: Any, scheduler: Any = None) -> str | None:
    """A non-finite or negative learning rate (or non-finite betas, eps, weight decay) in ``optimizer``'s
    param groups or ``scheduler``'s base rates, or None."""
    for i, group in enumerate(getattr(optimizer, "param_groups", [])):
        for key in (*GROUP_NUMBERS, "betas"):
            if key in group and not _finite(group[key]):
                return f"optimizer param group {i} has {key}={group[key]!r}"
        if float(group.get("lr", 0.0)) < 0:
            return f"optimizer param group {i} has a negative lr={group['lr']!r}"
    for i, lr in enumerate(getattr(scheduler, "base_lrs", None) or []):
        if not _finite(lr) or float(lr) < 0:
            return f"scheduler base_lrs[{i}]={lr!r}"
    scale = getattr(optimizer, "cur_scale", None)  # DeepSpeed's fp16 loss scale
    if scale is not None and (not _finite(scale) or float(scale) <= 0):
        return f"loss scale {scale!r}"
    return None
