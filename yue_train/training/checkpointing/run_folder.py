"""What a run folder must be before a run writes into it or continues it.

:func:`config_changes` compares the keys whose change would make a resumed run silently continue something
else (the model and its architecture, the tokenizer, LoRA, the data and its order, the seed, the loss)
between the checkpoint's ``config.yaml`` and the new config. The learning rate, the step/token budget,
logging, evaluation, checkpoint cadence and the process layout may change freely;
``trainer.allow_config_change`` accepts the listed others (or ``true``: any).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from yue_train.data.folder_lock import LOCK_NAME
from yue_train.training.checkpointing.layout import CHECKPOINTS, CONFIG, TRAINER_STATE
from yue_train.training.checkpointing.publish import pick_checkpoint
from yue_train.training.checkpointing.verify import verify_checkpoint
from yue_train.training.output import note

# Names that make a folder a run folder (any one of them; a run writes the lock first).
RUN_MARKERS = ("plan.json", CHECKPOINTS, "metrics.jsonl", LOCK_NAME)
# Compared on resume; a key names a subtree (``model`` compares everything under it but IGNORED).
IDENTITY_KEYS = (
    "recipe_name",
    "model",
    "lora",
    "data.train",
    "data.eval",
    "data.eval_fraction",
    "data.seq_len",
    "data.overflow",
    "data.shuffle_buffer",
    "data.demo_corpus",
    "trainer.seed",
    "trainer.loss.role_weights",
)
# Inside those subtrees: how the same computation runs (precision, kernels, memory), or the budget.
IGNORED = (
    "model.dtype",
    "model.attn_implementation",
    "model.gradient_checkpointing",
    "lora.dropout",
    "data.demo_corpus.out",
)
_IGNORED_IN_DATASETS = ("rounds", "tokens", "docs", "name")  # budget and labels of a data.train entry


class RunFolderError(ValueError):
    """The run folder cannot be written or continued as asked; the message says what to do."""


def find_resume(run_dir: Path, resume: Any) -> Path | None:
    """The checkpoint ``trainer.resume`` names (``auto``: the newest that verifies, saying which newer ones it
    skipped and why), or None (start over); :class:`RunFolderError` when none can be."""
    if resume in (None, False, "none", "never"):
        return None
    if resume == "auto":
        ckpt, skipped = pick_checkpoint(run_dir)
        if skipped and ckpt is not None:
            note(f"yue-train: resuming from {ckpt.name}; skipped {'; '.join(skipped)}")
        elif skipped:
            raise RunFolderError(
                f"{run_dir}: no checkpoint verifies ({'; '.join(skipped)}); pass trainer.resume=none to start "
                "over (a new trainer.run_dir keeps these)"
            )
        return ckpt
    path = Path(str(resume))
    if not (path / TRAINER_STATE).is_file():
        raise RunFolderError(f"trainer.resume={resume}: no checkpoint folder there")
    problem = verify_checkpoint(path)
    if problem is not None:
        raise RunFolderError(f"trainer.resume={resume}: {problem}")
    return path


def check_run_folder(run_dir: Path) -> None:
    """``run_dir`` is new, empty, or a yue-train run folder; a folder of other files (a project folder with its
    own ``config.yaml``) is refused instead of written over."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunFolderError(f"trainer.run_dir={run_dir} is a file; choose a folder")
    entries = sorted(p.name for p in run_dir.iterdir())
    if entries and not any(m in entries for m in RUN_MARKERS):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunFolderError(
            f"trainer.run_dir={run_dir} holds files that are not a yue-train run ({shown}); choose a new or "
            "empty folder"
        )


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if key in IGNORED:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}", out)
    elif key in ("data.train", "data.eval") and isinstance(value, list):
        out[f"{key}.count"] = len(value)
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                entry = {k: v for k, v in entry.items() if k not in _IGNORED_IN_DATASETS}
            _flatten(entry, f"{key}[{i}]", out)
    else:
        out[key] = value


def identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """The compared keys of a resolved config, flattened to ``a.b[i].c`` -> value."""
    out: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        node: Any = resolved
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            _flatten(node, key, out)
    return out


_ABSENT = object()


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` for each compared key that differs; a key only one side has (a
    config of an older or newer version) is not a change."""
    a, b = identity(old), identity(new)
    return [(k, a[k], b[k]) for k in a if k in b and a[k] != b[k]]  # in IDENTITY_KEYS order


def _allowed(key: str, allow: Any) -> bool:
    if allow is True:
        return True
    if not allow:
        return False
    return any(key == a or key.startswith(f"{a}.") or key.startswith(f"{a}[") for a in allow)


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def check_compatible(checkpoint: Path, resolved: dict[str, Any], allow: Any) -> None:
    """Raise :class:`RunFolderError` when resuming ``checkpoint`` under ``resolved`` changes a compared key
    that ``allow`` (``trainer.allow_config_change``) does not accept."""
    if allow not in (True, False, None) and not (
        isinstance(allow, (list, tuple)) and all(isinstance(a, str) for a in allow)
    ):
        raise RunFolderError(f"trainer.allow_config_change={allow!r}: give true, false or a list of keys")
    saved = Path(checkpoint) / CONFIG
    if not saved.is_file():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    assert isinstance(old, dict)
    changes = [c for c in config_changes(old, resolved) if not _allowed(c[0], allow)]
    if not changes:
        return
    shown = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in changes[:4])
    more = f" (and {len(changes) - 4} more)" if len(changes) > 4 else ""
    keys = ",".join(dict.fromkeys(k.split("[")[0] for k, _, _ in changes))
    raise RunFolderError(
        f"{checkpoint} was trained with another config: {shown}{more}. Resuming would continue it with these "
        f"changed; use a new trainer.run_dir, or trainer.resume=none to start over in this one, or pass "
        f"trainer.allow_config_change=[{keys}] to continue anyway"
    )
