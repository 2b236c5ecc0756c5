"""``yue-train chain``: run training phases one after another, each a recipe with its own run folder.

  yue-train chain RECIPE [RECIPE ...] [key=value ...]

Phases run in order, in this process. A phase that ends with status "finished" gets ``FINISHED.json`` (its
summary) in its run folder; running the same chain again skips those phases, and the phase that was
interrupted resumes from its latest checkpoint (``trainer.resume=auto``), so re-running the command is
how a stopped chain goes on. A later phase starts from an earlier one's weights through its own
``trainer.init_from``; the chain itself passes nothing between phases. Every ``key=value`` applies to
every phase (e.g. ``trainer.runs_root=/scratch/runs``). To re-run a finished phase, delete its
``FINISHED.json`` (and its checkpoints, or pass ``trainer.resume=none``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from yue_train.data.shards import write_json_atomic
from yue_train.format.bounded_json import JsonFileError, read_json_object

FINISHED_NAME = "FINISHED.json"


def config_digest(cfg: DictConfig) -> str:
    """Hash of the resolved config: tells whether a finished phase was run with the config asked for now."""
    return hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode("utf-8")).hexdigest()[:16]


def read_finished(run_dir: str | Path) -> dict[str, Any] | None:
    """The finished marker of a run folder, or None while the phase has not finished."""
    path = Path(run_dir) / FINISHED_NAME
    if not path.is_file():
        return None
    try:
        return read_json_object(path)
    except JsonFileError:  # written atomically, so this is a hand-edited file: treat as unfinished
        return None


def _plain_json(obj: Any) -> Any:
    """``obj`` with anything JSON cannot hold (paths, numpy numbers) as strings."""
    return json.loads(json.dumps(obj, default=str))


def _note(message: str) -> None:
    print(f"yue-train chain: {message}", file=sys.stderr, flush=True)


def run_chain(recipes: list[str], overrides: list[str]) -> list[dict[str, Any]]:
    """Run ``recipes`` in order with ``overrides``; returns one summary per phase run or skipped.

    Stops after a phase that did not finish (e.g. stopped by SIGTERM with a checkpoint saved): the later
    phases need its final weights.
    """
    from yue_train.config.compose import compose_config
    from yue_train.training import ranks, trainer

    # Compose every phase first: a typo in the third recipe or an override fails now, not after days.
    configs = [compose_config([f"recipe={r}", *overrides]) for r in recipes]
    summaries: list[dict[str, Any]] = []
    for i, (recipe, cfg) in enumerate(zip(recipes, configs, strict=True)):
        run_dir = Path(str(cfg.trainer.run_dir))
        label = f"phase {i + 1}/{len(recipes)} {recipe}"
        digest = config_digest(cfg)
        done = read_finished(run_dir)
        if done is not None:
            if done.get("config_digest") not in (None, digest):
                where = run_dir / FINISHED_NAME
                _note(
                    f"{label}: finished earlier with a different config; keeping that run (delete {where} to redo it)"
                )
            _note(f"{label}: already finished at step {done.get('step')} ({run_dir}); skipping")
            summaries.append({**done, "skipped": True})
            continue
        _note(f"{label}: training in {run_dir}")
        summary = dict(trainer.run_training(cfg))
        summary.update(recipe=recipe, skipped=False)
        summaries.append(summary)
        if summary.get("status") != "finished":
            _note(f"{label}: {summary.get('status')}; run the same command again to resume it")
            break
        if ranks.is_main():
            marker = {**summary, "config_digest": digest, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_json_atomic(run_dir / FINISHED_NAME, _plain_json(marker))
        ranks.barrier()  # every process sees the marker before any of them moves on
    return summaries


def parse_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(recipes, overrides): arguments with ``=`` are overrides, the others recipe names."""
    from yue_train.config.compose import UsageError, available_recipes

    recipes = [a for a in argv if "=" not in a]
    overrides = [a for a in argv if "=" in a]
    flags = [a for a in recipes if a.startswith("-")]
    if flags:
        raise UsageError(f"chain: unknown option {flags[0]} (see yue-train chain --help)")
    if not recipes:
        raise UsageError("chain: name at least one recipe, e.g. yue-train chain pretrain/tiny_p1 pretrain/tiny_p2")
    if any(o.startswith("recipe=") for o in overrides):
        raise UsageError("chain: give recipes as plain names, not recipe=NAME")
    known = available_recipes()
    unknown = [r for r in recipes if r not in known]
    if unknown:
        raise UsageError(f"chain: unknown recipe {unknown[0]!r}; available: {', '.join(known)}")
    if len(set(recipes)) != len(recipes):
        raise UsageError("chain: a recipe is named twice; each phase needs its own recipe (and run folder)")
    return recipes, overrides


def chain_main(argv: list[str]) -> int:
    from yue_train.cli.errors import run_reporting_errors

    if any(a in ("-h", "--help", "help") for a in argv):
        print((__doc__ or "").strip())
        from yue_train.config.compose import recipe_listing

        print(recipe_listing())
        return 0
    code, summaries = run_reporting_errors(lambda: run_chain(*parse_args(argv)))
    if code:
        return code
    print(json.dumps(_plain_json(summaries), indent=2))
    return 0
