"""``yue-train``: train with a named recipe, or export a checkpoint.

  yue-train recipe=NAME [key=value ...]      compose conf/ + recipes/NAME.yaml with Hydra and train
  yue-train export CHECKPOINT OUT [--base B] any checkpoint (LoRA merged into its base) -> plain HF folder
  yue-train convert-weights SRC OUT          a model/adapter folder with pickle weights -> safetensors copy
  yue-train recipe=NAME ... --print-config   print the resolved config, each key's doc as a comment, and exit
  yue-train recipe=NAME ... --print-plan     print the phase plan (datasets, budget, steps) for $WORLD_SIZE
                                             processes and, on a CUDA machine, the estimated memory of
                                             one step, and exit
  yue-train chain R1 R2 ... [key=value ...]  run recipes one after another (pre-training phases); a re-run
                                             skips finished phases and resumes the interrupted one

  --recipes-dir DIR                          also look for recipes in DIR (repeatable; or $YUE_TRAIN_RECIPES_DIR)
  -q/--quiet, -v/--verbose                   errors and the final summary only / library warnings and logs too

Ctrl-C (or SIGTERM) saves a checkpoint at the end of the current step and exits; a second Ctrl-C stops at
once without saving. Running the same command again resumes; on a finished run it says so and does nothing.

The config is composed with Hydra's compose API (:mod:`yue_train.config.compose`); the run folder (``trainer.run_dir``) takes the resolved config, metrics and
checkpoints, so Hydra's own output folder is not used. ``export`` is handled before Hydra: it takes
paths, not a config. Every expected failure ends as one ``yue-train: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from yue_train.config.compose import RECIPES_ENV, UsageError, compose_config, recipe_listing

USAGE = "\n\n".join(__doc__.split("\n\n")[1:4]) if __doc__ else ""


def split_recipes_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """(``--recipes-dir`` values, the other arguments)."""
    dirs, rest, it = [], [], iter(argv)
    for a in it:
        if a == "--recipes-dir":
            value = next(it, None)
            if value is None:
                raise UsageError("--recipes-dir needs a folder")
            dirs.append(value)
        elif a.startswith("--recipes-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return dirs, rest


def train_main(overrides: list[str]) -> int:
    from yue_train.cli.errors import run_reporting_errors
    from yue_train.training.trainer import run_training

    code, summary = run_reporting_errors(lambda: run_training(compose_config(overrides)))
    if code:
        return code
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per run, not one per process
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from yue_train.training.output import apply_verbosity

    rest = apply_verbosity("yue-train", sys.argv[1:] if argv is None else argv)
    if rest is None:
        return 2
    try:
        extra_dirs, argv = split_recipes_dirs(rest)
    except UsageError as e:
        print(f"yue-train: error: {e}", file=sys.stderr)
        return 2
    if extra_dirs:  # through the environment, so chain phases and torchrun workers see them too
        known = [d for d in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if d]
        os.environ[RECIPES_ENV] = os.pathsep.join(known + [d for d in extra_dirs if d not in known])
    if argv and argv[0] == "chain":
        from yue_train.cli.chain import chain_main

        return chain_main(argv[1:])
    if argv and argv[0] == "convert-weights":
        from yue_train.models.convert_weights import convert_main

        return convert_main(argv[1:])
    if argv and argv[0] == "export":
        from yue_train.training.checkpointing.dcp import dcp_model
        from yue_train.training.checkpointing.deepspeed import deepspeed_model
        from yue_train.training.checkpointing.hf_export import export_main

        return export_main(argv[1:], sources=(dcp_model, deepspeed_model))
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        try:
            print(recipe_listing())
        except UsageError as e:
            print(f"yue-train: error: {e}", file=sys.stderr)
            return 2
        return 0
    if "--print-config" in argv:  # launch.sh --dry-run: the resolved config with each key's doc, nothing run
        from omegaconf.errors import OmegaConfBaseException

        from yue_train.config.schema import explain, format_config

        try:
            print(format_config(compose_config([a for a in argv if a != "--print-config"])), end="")
        except (UsageError, OmegaConfBaseException) as e:  # the latter: an interpolation that fails to resolve
            print(f"yue-train: error: {e if isinstance(e, UsageError) else explain(e)}", file=sys.stderr)
            return 2
        return 0
    if "--print-plan" in argv:  # the phase plan (budget, steps, shares) for WORLD_SIZE processes, nothing run
        from yue_train.training.plan import PlanError, plan_phase

        try:
            cfg = compose_config([a for a in argv if a != "--print-plan"])
            plan = plan_phase(cfg, int(os.environ.get("WORLD_SIZE", "1")))
            print(plan.format())
            print_memory_estimate(cfg, plan.micro_batch)
        except (UsageError, PlanError, ValueError) as e:
            print(f"yue-train: error: {e}", file=sys.stderr)
            return 2
        return 0
    return train_main(argv)


def print_memory_estimate(cfg: Any, micro_batch: int) -> None:
    """On a CUDA machine: the estimated memory of one step of the configured run (and a warning when it
    exceeds the device's). Elsewhere nothing: the estimate is of GPU memory."""
    import torch

    if not torch.cuda.is_available():
        return
    from yue_train.models.loading import ModelSpec, load_model_config
    from yue_train.training.memory_plan import plan_memory

    try:
        model_config = load_model_config(ModelSpec.from_cfg(cfg.model))
    except OSError as e:  # a hub id that cannot be reached
        print(f"memory: no estimate (the model's config could not be read: {e})")
        return
    print("\n".join(plan_memory(cfg, model_config, torch.device("cuda"), micro_batch).lines))


if __name__ == "__main__":
    sys.exit(main())
