"""Where configs live and how a recipe becomes one resolved config.

The config groups (``conf/``) and the named recipes (``recipes/``) sit at the top of the repository and
ship inside the wheel as ``yue_train/resources/{conf,recipes}``; both are found here, so the package works
from a source checkout, an editable install and a plain wheel alike. Users add recipe folders of their
own with ``--recipes-dir DIR`` or ``YUE_TRAIN_RECIPES_DIR`` (``os.pathsep``-separated), without editing
the package. A recipe file whose name starts with ``_`` (``recipes/pretrain/_base.yaml``) is a base: other
recipes list it in their ``defaults`` to share its settings; it is neither listed nor run by itself.

Recipes are read with ``yaml.safe_load`` (nothing in them executes) and registered in Hydra's ConfigStore
as the ``recipe`` group, so Hydra composes ``conf/config.yaml`` + ``recipe=NAME`` + overrides as one
defaults tree, checked against the typed schema (:mod:`yue_train.config.schema`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from yue_train.format.files import read_text_capped

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


def recipe_dirs(extra: list[str | Path] | None = None) -> list[Path]:
    """The built-in recipes, then ``$YUE_TRAIN_RECIPES_DIR`` entries, then ``extra`` (``--recipes-dir``)."""
    dirs = [_packaged("recipes") or _SOURCE_ROOT / "recipes"]
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


MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 100_000  # values in a recipe once every alias is expanded (the largest recipe has ~100)
MAX_OVERRIDE_DEPTH = 100  # brackets nested in one key=value override


def expanded_size(node: yaml.Node) -> int:
    """Nodes of a composed YAML graph once aliases are expanded (an alias repeats its anchor's whole tree),
    counted without expanding: each distinct node's size is computed once."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        item, done = stack.pop()
        if id(item) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(item, yaml.SequenceNode):
            children = list(item.value)
        elif isinstance(item, yaml.MappingNode):
            children = [n for pair in item.value for n in pair]
        if done:
            sizes[id(item)] = 1 + sum(sizes.get(id(c), 0) for c in children)
        else:
            stack.append((item, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(node)]


def load_yaml_bounded(text: str, where: str, max_nodes: int = MAX_RECIPE_NODES) -> object:
    """``yaml.safe_load`` of ``text``, refused (UsageError naming ``where``) when its aliases expand to more
    than ``max_nodes`` values: a kilobyte of nested aliases can stand for billions of them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_size(node) > max_nodes:
            raise UsageError(f"{where}: its aliases expand to more than {max_nodes:,} values; write it out plainly")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _read_recipe(recipe: Recipe) -> dict:
    try:
        text = read_text_capped(recipe.path, f"recipe {recipe.name!r}", MAX_RECIPE_BYTES)
        node = load_yaml_bounded(text, f"recipe {recipe.name!r} ({recipe.path})") or {}
    except (UnicodeDecodeError, OSError) as e:
        raise UsageError(f"recipe {recipe.name!r} ({recipe.path}) cannot be read ({e})") from None
    except UsageError:
        raise
    except ValueError as e:  # larger than MAX_RECIPE_BYTES, or not a regular file
        raise UsageError(str(e)) from None
    except RecursionError:
        raise UsageError(f"recipe {recipe.name!r} ({recipe.path}) is nested too deeply") from None
    except yaml.YAMLError as e:
        raise UsageError(
            f"recipe {recipe.name!r} ({recipe.path}) is not valid YAML: {' '.join(str(e).split())}"
        ) from None
    if not isinstance(node, dict):
        raise UsageError(f"recipe {recipe.name!r} ({recipe.path}) must be a mapping of config keys")
    return node


def _defaults_named(recipe: Recipe, node: dict, recipes: dict[str, Recipe]) -> list[str]:
    """The recipes that ``node``'s ``defaults`` list builds on (``/recipe/pretrain/_base``, ``tiny``, or a
    name relative to the recipe's own folder); ``override /group: x`` entries name config groups, not recipes."""
    folder = recipe.name.rpartition("/")[0]
    found = []
    for entry in node.get("defaults") or []:
        if isinstance(entry, dict):
            refs = [f"{k}/{v}" for k, v in entry.items() if isinstance(k, str) and not k.startswith("override")]
        else:
            refs = [str(entry)]
        for ref in refs:
            name = ref.lstrip("/").removeprefix("recipe/").removeprefix("recipe")
            name = name.lstrip("/")
            for candidate in (f"{folder}/{name}" if folder else name, name):
                if candidate in recipes and candidate not in found:
                    found.append(candidate)
                    break
    return found


def _register_with_defaults(name: str, recipes: dict[str, Recipe]) -> None:
    """Register recipe ``name`` and, transitively, the recipes its ``defaults`` build on; no other recipe
    file is read (a broken or hostile recipe elsewhere in the folders cannot stop this one). Every recipe is a
    global overlay (its keys are top-level), as the ``# @package _global_`` header of each file says."""
    from hydra.core.config_store import ConfigStore

    todo, done = [name], set()
    while todo:
        current = todo.pop()
        if current in done:
            continue
        done.add(current)
        node = _read_recipe(recipes[current])
        folder, _, leaf = current.rpartition("/")  # recipe=pretrain/phase1_warmup: group recipe/pretrain
        group = f"recipe/{folder}" if folder else "recipe"
        ConfigStore.instance().store(group=group, name=leaf, node=node, package="_global_")
        todo.extend(_defaults_named(recipes[current], node, recipes))


def check_override_depth(overrides: list[str]) -> None:
    """Each ``key=value`` nests at most :data:`MAX_OVERRIDE_DEPTH` brackets (Hydra's parser recurses per level)."""
    for override in overrides:
        depth = deepest = 0
        for ch in override:
            if ch in "[{(":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "]})":
                depth -= 1
        if deepest > MAX_OVERRIDE_DEPTH:
            key = override.split("=", 1)[0][:80]
            raise UsageError(
                f"override {key}=...: nested {deepest:,} levels deep; at most {MAX_OVERRIDE_DEPTH} are read"
            )


def compose_config(
    overrides: list[str], recipes_dirs: list[str | Path] | None = None, values: Mapping[str, Any] | None = None
) -> DictConfig:
    """The composed, schema-checked config of ``overrides`` (``recipe=NAME`` among them; default ``demo``).

    ``values``: Python values set after composing (:func:`merge_values`), for callers that hold values
    rather than command-line strings (the Python API)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from yue_train.config.schema import SchemaError, check_schema, explain, register_schema

    check_override_depth(overrides)
    recipes = find_recipes(recipes_dirs, bases=True)
    runnable = ", ".join(sorted(n for n in recipes if not is_base(n)))
    name = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("recipe=")), DEFAULT_RECIPE)
    if name in recipes and is_base(name):
        raise UsageError(
            f"recipe {name!r} is a base that other recipes build on, not a recipe to run; pick one of: {runnable}"
        )
    if name not in recipes:
        raise UsageError(f"unknown recipe {name!r}; available: {runnable}")
    _register_with_defaults(name, recipes)  # recipes may build on each other (defaults: - tiny, - _base)
    register_schema()
    overrides = [o for o in overrides if not o.startswith("recipe=")] + [f"recipe={name}"]
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        if values:
            cfg = merge_values(cfg, values)
    except (HydraException, OmegaConfBaseException) as e:
        raise UsageError(explain(e)) from None
    try:
        return check_schema(cfg)
    except SchemaError as e:
        raise UsageError(str(e)) from None


def group_choices(values: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """``values`` split into config-group choices (a name for a folder of ``conf/``: ``lora="qkvo"``), as
    Hydra overrides, and the values to merge (:func:`merge_values`)."""
    groups = {p.name for p in conf_dir().iterdir() if p.is_dir()}
    choices = [f"{k}={v}" for k, v in values.items() if k in groups and isinstance(v, str)]
    rest = {k: v for k, v in values.items() if not (k in groups and isinstance(v, str))}
    return choices, rest


def merge_values(cfg: DictConfig, values: Mapping[str, Any]) -> DictConfig:
    """``cfg`` with ``values`` set: a dotted key (``"optim.lr"``) sets that key, a mapping
    (``trainer={"max_steps": 5}``) merges into its section, a list replaces. Unknown keys are added here
    and refused by the schema check that follows, naming them."""
    merged = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # interpolations and ??? kept
    for key, value in values.items():
        OmegaConf.update(merged, key, _plain(value), merge=True)
    return merged


def _plain(value: Any) -> Any:
    """Paths as strings and tuples as lists, which OmegaConf stores as config values."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
