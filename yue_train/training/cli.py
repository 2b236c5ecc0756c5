"""``yue-train``: train with a named recipe, or export a checkpoint.

  yue-train recipe=NAME [key=value ...]      compose conf/ + recipes/NAME.yaml with Hydra and train
  yue-train export CHECKPOINT OUT [--base B] merge a LoRA adapter into its base -> plain HF checkpoint
  yue-train recipe=NAME ... --print-config   print the resolved config and exit
  yue-train recipe=NAME ... --print-plan     print the phase plan (datasets, budget, steps) for $WORLD_SIZE
                                             processes and exit
  yue-train chain R1 R2 ... [key=value ...]  run recipes one after another (pre-training phases); a re-run
                                             skips finished phases and resumes the interrupted one

The config is composed with Hydra's compose API (the ``recipe`` config group is ``recipes/``, linked as
``conf/recipe``); the run folder (``trainer.run_dir``) takes the resolved config, metrics and
checkpoints, so Hydra's own output folder is not used. ``export`` is handled before Hydra: it takes
paths, not a config. Every expected failure ends as one ``yue-train: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("YUE_TRAIN_CONF_DIR", ROOT / "conf"))
RECIPES_DIR = CONF_DIR / "recipe"
USAGE = __doc__.split("\n\n")[1] if __doc__ else ""


class UsageError(ValueError):
    pass


def available_recipes() -> list[str]:
    # Nested folders are recipe families: recipes/pretrain/phase1_warmup.yaml is recipe=pretrain/phase1_warmup.
    return sorted(p.relative_to(RECIPES_DIR).with_suffix("").as_posix() for p in RECIPES_DIR.rglob("*.yaml"))


def compose_config(overrides: list[str]) -> DictConfig:
    """The composed config of ``overrides`` (``recipe=NAME`` among them; default ``demo``)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    recipes = [o.split("=", 1)[1] for o in overrides if o.startswith("recipe=")]
    name = recipes[-1] if recipes else "demo"
    if name not in available_recipes():
        raise UsageError(f"unknown recipe {name!r}; available: {', '.join(available_recipes())}")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        lines = [x.strip() for x in str(e).splitlines() if x.strip() and "HYDRA_FULL_ERROR" not in x]
        raise UsageError(" ".join(lines)) from None


def train_main(overrides: list[str]) -> int:
    from omegaconf.errors import OmegaConfBaseException

    from yue_train.training.data import DataConfigError
    from yue_train.training.distributed import destroy_process_group
    from yue_train.training.trainer import TrainingError, run_training
    from yue_train.training.validate import ConfigError

    try:
        cfg = compose_config(overrides)
        summary = run_training(cfg)
    except (UsageError, ConfigError, DataConfigError, TrainingError, OmegaConfBaseException) as e:
        message = " ".join(x.strip() for x in str(e).splitlines() if x.strip())
        print(f"yue-train: error: {message}", file=sys.stderr)
        return 2
    finally:
        destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per run, not one per process
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "chain":
        from yue_train.training.chain import chain_main

        return chain_main(argv[1:])
    if argv and argv[0] == "export":
        from yue_train.training.export import export_main

        return export_main(argv[1:])
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        print(f"recipes: {', '.join(available_recipes())}")
        return 0
    if "--print-config" in argv:  # launch.sh --dry-run: the resolved config, nothing run
        from omegaconf import OmegaConf

        try:
            print(OmegaConf.to_yaml(compose_config([a for a in argv if a != "--print-config"]), resolve=True))
        except UsageError as e:
            print(f"yue-train: error: {e}", file=sys.stderr)
            return 2
        return 0
    if "--print-plan" in argv:  # the phase plan (budget, steps, shares) for WORLD_SIZE processes, nothing run
        from yue_train.training.plan import PlanError, plan_phase

        try:
            cfg = compose_config([a for a in argv if a != "--print-plan"])
            print(plan_phase(cfg, int(os.environ.get("WORLD_SIZE", "1"))).format())
        except (UsageError, PlanError) as e:
            print(f"yue-train: error: {e}", file=sys.stderr)
            return 2
        return 0
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
