"""What a run writes down about its config (``config.yaml``, ``plan.json``, the provenance record, the
W&B config) keeps each ``${oc.env:NAME}`` expression instead of the variable's value.

Recipes may take paths (or tokens) from the environment; the records are shared with the model and the
report, so the values must not be in them. The config the run uses is resolved as usual; only the
records are redacted: every value of an environment variable the unresolved config interpolates is
replaced by its expression wherever it appears in a recorded string."""

from __future__ import annotations

import os
import re
from typing import Any

from omegaconf import OmegaConf

ENV_EXPRESSION = re.compile(r"\$\{oc\.env:\s*([^,}\s]+)")
MIN_REDACTED = 4  # shorter values ("1", "no") are not secrets and would match everywhere


def env_expressions(cfg: Any) -> dict[str, str]:
    """Value -> ``${oc.env:NAME}`` for every environment variable that ``cfg`` (unresolved) interpolates."""
    text = OmegaConf.to_yaml(cfg, resolve=False) if OmegaConf.is_config(cfg) else str(cfg)
    found = {}
    for name in ENV_EXPRESSION.findall(text):
        value = os.environ.get(name)
        if value and len(value) >= MIN_REDACTED:
            found[value] = f"${{oc.env:{name}}}"
    return found


def redact(obj: Any, expressions: dict[str, str]) -> Any:
    """``obj`` (plain dicts, lists, strings) with each environment value replaced by its expression."""
    if not expressions:
        return obj
    if isinstance(obj, str):
        for value in sorted(expressions, key=len, reverse=True):
            obj = obj.replace(value, expressions[value])
        return obj
    if isinstance(obj, dict):
        return {k: redact(v, expressions) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, expressions) for v in obj)
    return obj


def recorded_yaml(container: dict[str, Any]) -> str:
    """``config.yaml`` text of a resolved, redacted config (expressions written as they are)."""
    return OmegaConf.to_yaml(OmegaConf.create(container))
