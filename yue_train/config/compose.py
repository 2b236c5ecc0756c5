"""Where configs live and how a recipe becomes one resolved config.

The config groups (``conf/``) and the named recipes (``recipes/``) sit at the top of the repository and
ship inside the wheel as ``yue_train/resources/{conf,recipes}``; both are found here, so the package works
from a source checkout, an editable install and a plain wheel alike. Users add recipe folders of their
own with ``--recipes-dir DIR`` or ``YUE_TRAIN_RECIPES_DIR`` (``os.pathsep``-separated), without editing
the package. A recipe file whose name starts with ``_`` (``recipes/pretrain/_base.yaml``) is a base: other
recipes list it in their ``defaults`` to share its settings; it is neither listed nor run by itself.

Recipes are read with ``yaml.safe_load`` (nothing in them executes) and registered in Hydra's ConfigStore
as the ``recipe`` group, so Hydra composes ``conf/config.yaml`` + ``recipe=NAME`` + overrides as one
defaults tree; the composed config is then checked against the typed schema
(:mod:`yue_train.config.schema`), which rejects unknown keys and wrong types naming the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import DictConfig

RECIPES_ENV = "YUE_TRAIN_RECIPES_DIR"
CONF_ENV = "YUE_TRAIN_CONF_DIR"
DEFAULT_RECIPE = "demo"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


class UsageError(ValueError):
    """A command line or config that cannot be used; the message is one line saying what to change."""


def _packaged(name: str) -> Path | None:
    try:
        path = Path(str(resources.files("yue_train") / "resources" / name))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if path.is_dir() else None


def conf_dir() -> Path:
    """``$YUE_TRAIN_CONF_DIR``, else the wheel's packaged ``conf/``, else the source checkout's."""
    if os.environ.get(CONF_ENV):
        return Path(os.environ[CONF_ENV])
    return _packaged("conf") or _SOURCE_ROOT / "conf"


def builtin_recipes_dir() -> Path:
    return _packaged("recipes") or _SOURCE_ROOT / "recipes"


def recipe_dirs(extra: list[str | Path] | None = None) -> list[Path]:
    """The built-in recipes, then ``$YUE_TRAIN_RECIPES_DIR`` entries, then ``extra`` (``--recipes-dir``)."""
    dirs = [builtin_recipes_dir()]
    dirs += [Path(d) for d in os.environ.get(RECIPES_ENV, "").split(os.pathsep) if d]
    dirs += [Path(d) for d in extra or []]
    for d in dirs[1:]:
        if not d.is_dir():
            raise UsageError(f"recipe folder not found: {d} (check --recipes-dir / ${RECIPES_ENV})")
    return dirs


@dataclass(frozen=True)
class Recipe:
    name: str  # pretrain/phase1_warmup for recipes/pretrain/phase1_warmup.yaml
    path: Path

    @property
    def description(self) -> str:
        """The recipe's first comment line after the ``@package`` header."""
        for line in self.path.read_text(encoding="utf-8").splitlines():
            text = line.lstrip("# ").strip()
            if not line.startswith("#"):
                break
            if text and not text.startswith("@package"):
                return text
        return ""


def is_base(name: str) -> bool:
    """A recipe whose file name starts with ``_`` (``pretrain/_base``) holds settings other recipes list in
    their ``defaults``; it is not run or listed by itself."""
    return name.rpartition("/")[2].startswith("_")


def find_recipes(extra_dirs: list[str | Path] | None = None, *, bases: bool = False) -> dict[str, Recipe]:
    """Every runnable recipe by name (with ``bases``, the ``_``-prefixed bases too); the same name in two
    folders is refused (rename one)."""
    found: dict[str, Recipe] = {}
    for d in recipe_dirs(extra_dirs):
        for path in sorted(d.rglob("*.yaml")):
            name = path.relative_to(d).with_suffix("").as_posix()
            if name in found:
                raise UsageError(f"recipe {name!r} is defined twice: {found[name].path} and {path}; rename one")
            found[name] = Recipe(name, path)
    return found if bases else {n: r for n, r in found.items() if not is_base(n)}


def available_recipes(extra_dirs: list[str | Path] | None = None) -> list[str]:
    """The names of the runnable recipes (what ``yue-train --help`` lists)."""
    return sorted(find_recipes(extra_dirs))


def recipe_listing(extra_dirs: list[str | Path] | None = None) -> str:
    """The ``recipes:`` block of ``yue-train --help``: each runnable recipe with its description."""
    recipes = find_recipes(extra_dirs)
    width = max(len(n) for n in recipes)
    return "recipes:\n" + "\n".join(f"  {n:<{width}}  {r.description}" for n, r in sorted(recipes.items()))


def _read_recipe(recipe: Recipe) -> dict:
    try:
        node = yaml.safe_load(recipe.path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(
            f"recipe {recipe.name!r} ({recipe.path}) is not valid YAML: {' '.join(str(e).split())}"
        ) from None
    if not isinstance(node, dict):
        raise UsageError(f"recipe {recipe.name!r} ({recipe.path}) must be a mapping of config keys")
    return node


def _register(recipe: Recipe) -> None:
    from hydra.core.config_store import ConfigStore

    # Every recipe is a global overlay (its keys are top-level: model, data, trainer, ...), as the
    # ``# @package _global_`` header of each file says.
    folder, _, name = recipe.name.rpartition("/")  # recipe=pretrain/phase1_warmup: group recipe/pretrain
    group = f"recipe/{folder}" if folder else "recipe"
    ConfigStore.instance().store(group=group, name=name, node=_read_recipe(recipe), package="_global_")


def recipe_of(overrides: list[str]) -> str:
    names = [o.split("=", 1)[1] for o in overrides if o.startswith("recipe=")]
    return names[-1] if names else DEFAULT_RECIPE


def compose_config(overrides: list[str], recipes_dirs: list[str | Path] | None = None) -> DictConfig:
    """The composed, schema-checked config of ``overrides`` (``recipe=NAME`` among them; default ``demo``)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from yue_train.config.schema import SchemaError, check_schema, explain, register_schema

    recipes = find_recipes(recipes_dirs, bases=True)
    runnable = ", ".join(sorted(n for n in recipes if not is_base(n)))
    name = recipe_of(overrides)
    if name in recipes and is_base(name):
        raise UsageError(
            f"recipe {name!r} is a base that other recipes build on, not a recipe to run; pick one of: {runnable}"
        )
    if name not in recipes:
        raise UsageError(f"unknown recipe {name!r}; available: {runnable}")
    for recipe in recipes.values():  # recipes may build on each other (defaults: - tiny, - _base)
        _register(recipe)
    register_schema()
    overrides = [o for o in overrides if not o.startswith("recipe=")] + [f"recipe={name}"]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise UsageError(explain(e)) from None
    try:
        return check_schema(cfg)
    except SchemaError as e:
        raise UsageError(str(e)) from None
