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


def param_groups_problem(groups: Any, where: str = "optimizer") -> str | None:
    """A non-finite or negative learning rate (or non-finite betas, eps, weight decay) in a list of
    optimizer ``param_groups`` (live or as saved), or None."""
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        return f"{where} param groups are not a list of objects"
    for i, group in enumerate(groups):
        for key in (*GROUP_NUMBERS, "betas"):
            if key in group and not _finite(group[key]):
                return f"{where} param group {i} has {key}={group[key]!r}"
        if float(group.get("lr", 0.0)) < 0:
            return f"{where} param group {i} has a negative lr={group['lr']!r}"
    return None


def _rates_problem(rates: Any, name: str) -> str | None:
    for i, lr in enumerate(rates or []):
        if not _finite(lr) or float(lr) < 0:
            return f"scheduler {name}[{i}]={lr!r}"
    return None


def scheduler_state_problem(state: Any, step: int) -> str | None:
    """A saved LR scheduler state (``scheduler.state_dict()``) whose rates are not finite and non-negative,
    or whose ``last_epoch`` (one per optimizer step taken) is not a count within the run's ``step``."""
    if not isinstance(state, dict):
        return "scheduler state is not an object"
    for name in ("base_lrs", "_last_lr"):
        if not isinstance(state.get(name, []), (list, tuple)):
            return f"scheduler {name} is not a list"
        problem = _rates_problem(state.get(name), name)
        if problem:
            return problem
    epoch = state.get("last_epoch", 0)
    if not _count(epoch) or epoch > step:
        return f"scheduler last_epoch={epoch!r} is not a step count within the checkpoint's step {step}"
    return None


def step_counts_problem(steps: dict[str, float], step: int) -> str | None:
    """A saved per-parameter optimizer ``step`` (one per update taken) that is not a finite count within the
    run's ``step``, or None: Adam's bias correction divides by ``1 - beta ** step``."""
    for name, value in steps.items():
        if not (math.isfinite(value) and 0 <= value <= step):
            return f"{name}={value!r} is not a step count within the checkpoint's step {step}"
    return None


def _scalar(value: Any) -> float | None:
    """A number or one-element tensor as a float; None for anything else (a sharded tensor, say)."""
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None


def optimizer_problem(optimizer: Any, scheduler: Any = None) -> str | None:
    """A non-finite or negative learning rate (or non-finite betas, eps, weight decay) in ``optimizer``'s
    param groups or ``scheduler``'s base rates, a non-finite or negative per-parameter ``step`` (Adam's
    bias correction divides by it), or a loss scale that is not a positive number; or None."""
    problem = param_groups_problem(getattr(optimizer, "param_groups", []))
    if problem:
        return problem
    problem = _rates_problem(getattr(scheduler, "base_lrs", None), "base_lrs")
    if problem:
        return problem
    for state in getattr(optimizer, "state", {}).values():
        step = _scalar(state.get("step")) if isinstance(state, dict) else None
        if step is not None and not (math.isfinite(step) and step >= 0):
            return f"optimizer state has step={step!r}"
    scale = getattr(optimizer, "cur_scale", None)  # DeepSpeed's fp16 loss scale
    if scale is not None and (not _finite(scale) or float(scale) <= 0):
        return f"loss scale {scale!r}"
    return None
