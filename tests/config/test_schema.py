"""The typed schema: every recipe composes into it; unknown keys and wrong types fail while composing,
naming the key (and the closest valid one); ``???`` and ``${...}`` stay as they are until read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from yue_train.config.compose import UsageError, available_recipes, compose_config, conf_dir, recipe_dirs
from yue_train.config.schema import DatasetConfig, DemoCorpusConfig, RootConfig, TrainerConfig

RECIPES = available_recipes()
GROUPS = {  # every option of every config group, composed onto a test recipe
    group: sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
    for group in ("model", "data", "lora", "logging", "distributed")
}


def compose(*overrides: str):
    return compose_config(list(overrides))


def error_of(*overrides: str) -> str:
    with pytest.raises(UsageError) as e:
        compose(*overrides)
    return str(e.value)


def test_user_and_test_recipes_are_all_there():
    assert {"demo", "lora_s1", "full_s1", "train_s2", "pretrain/phase1_warmup"} <= set(RECIPES)
    assert {"tiny", "tiny_lora", "tiny_s2", "tiny_random", "pretrain/tiny_p1"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_into_the_schema(recipe):
    cfg = compose(f"recipe={recipe}")
    assert OmegaConf.get_type(cfg) is RootConfig and OmegaConf.get_type(cfg.trainer) is TrainerConfig
    if not OmegaConf.is_missing(cfg.data, "train"):
        assert all(OmegaConf.get_type(e) is DatasetConfig for e in cfg.data.train)
    assert OmegaConf.missing_keys(cfg) <= {"data.train", "model.tokenizer"}  # what a user must still give
    assert isinstance(cfg.trainer.max_steps, int) and isinstance(cfg.optim.lr, float)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes(group, option):
    cfg = compose("recipe=tiny", f"{group}={option}")
    assert OmegaConf.get_type(cfg) is RootConfig


@pytest.mark.parametrize(
    "override",
    ["trainer.max_step=5", "+trainer.max_step=5", "++trainer.max_step=5"],
)
def test_typo_names_the_closest_key(override):
    assert error_of("recipe=tiny", override) == "unknown config key trainer.max_step (did you mean trainer.max_steps?)"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+recipe_nam=x"], "unknown config key recipe_nam (did you mean recipe_name?)"),
        (["+trainer.loss.role_weights.vocals=0"],
         "unknown config key trainer.loss.role_weights.vocals (did you mean trainer.loss.role_weights.vocal?)"),
        (["data.train=[{path: /a}, {path: /b, wieght: 2}]"],
         "unknown config key data.train[1].wieght (did you mean data.train[1].weight?)"),
        (["+data.train.0.rounds_=2"], "unknown config key data.train[0].rounds_ (did you mean data.train[0].rounds?)"),
        (["distributed=fsdp2", "distributed.cpu_offlaod=true"],
         "unknown config key distributed.cpu_offlaod (did you mean distributed.cpu_offload?)"),
        (["+trainer.zzz=1"], "unknown config key trainer.zzz (trainer takes runs_root, run_dir, device, "),
    ],
)  # fmt: skip
def test_unknown_keys_anywhere(overrides, message):
    assert error_of("recipe=tiny", *overrides).startswith(message)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=five", "trainer.max_steps: expected an integer, got 'five'"),
        ("lora.r=1.5", "lora.r: expected an integer, got 1.5"),
        ("model.load_in_4bit=maybe", "model.load_in_4bit: expected true or false, got 'maybe'"),
        ("optim.betas=0.9", "optim.betas: expected a list, got 0.9"),
        ("trainer.loss=5", "trainer.loss: expected a mapping, got 5"),
        ("data.train=[{path: /a}, {path: /b, weight: heavy}]", "data.train[1].weight: expected a number, got 'heavy'"),
    ],
)
def test_wrong_type_names_the_key(override, message):
    assert error_of("recipe=tiny", override) == message


def test_numbers_convert_to_the_declared_type():
    cfg = compose("recipe=tiny", "trainer.max_tokens=2.8e11", "optim.lr=1", "trainer.max_steps=7")
    assert (cfg.trainer.max_tokens, cfg.optim.lr, cfg.trainer.max_steps) == (2.8e11, 1.0, 7)
    assert type(cfg.optim.lr) is float


def test_missing_values_stay_missing_until_validated():
    cfg = compose("recipe=lora_s1")
    assert OmegaConf.is_missing(cfg.data, "train")
    assert OmegaConf.is_missing(compose("recipe=tiny", "data.train=???").data, "train")


def test_interpolations_resolve_when_read(monkeypatch, tmp_path):
    monkeypatch.delenv("YUE_DATA", raising=False)
    cfg = compose("recipe=pretrain/phase1_warmup")
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert raw["data"]["train"][0]["path"] == "${data.root}/cot_en"
    assert raw["data"]["root"] == "${oc.env:YUE_DATA,/data/yue}"
    assert raw["trainer"]["run_dir"] == "${trainer.runs_root}/${recipe_name}"
    monkeypatch.setenv("YUE_DATA", str(tmp_path))  # after composing: the value is read now
    assert cfg.data.train[0].path == f"{tmp_path}/cot_en"
    assert cfg.trainer.run_dir == "runs/pretrain_phase1_warmup"


def test_free_form_mappings_take_any_key():
    cfg = compose("recipe=tiny", "+model.overrides.num_hidden_layers=1")
    assert cfg.model.overrides == {"num_hidden_layers": 1}


def test_defaults_live_in_the_schema_only():
    """No conf file restates a schema default (a value given twice could drift apart)."""

    def defaults(cls: type) -> dict:
        return OmegaConf.to_container(OmegaConf.structured(cls), resolve=False)

    schema = {f.name: defaults(f.default_factory) for f in dataclasses.fields(RootConfig) if f.name != "recipe_name"}
    schema["data"]["demo_corpus"] = defaults(DemoCorpusConfig)  # an optional block: None unless a file sets it

    def restated(given: dict, default: dict, where: str) -> list[str]:
        out = []
        for key, value in given.items():
            if isinstance(value, dict) and isinstance(default.get(key), dict) and value:
                out += restated(value, default[key], f"{where}.{key}")
            elif key in default and value == default[key] and not (isinstance(value, dict) and not value):
                out.append(f"{where}.{key}")
        return out

    found = []
    for path in sorted(conf_dir().glob("*/*.yaml")):
        group = path.parent.name
        if f"{group}/{path.name}" in FULL_LISTINGS:
            continue
        given = yaml.safe_load(path.read_text()) or {}
        found += restated(given, schema[group], f"{group}/{path.name}: {group}")
    assert not found


def test_missing_marks_only_keys_without_default():
    """``???`` in a file cannot take back a schema default (OmegaConf merges keep a value over ``???``), so a
    file may mark only keys the schema leaves without default."""
    schema = OmegaConf.structured(RootConfig)
    files = [(p, p.parent.name) for p in conf_dir().glob("*/*.yaml")]
    files += [(p, "") for d in recipe_dirs() for p in d.rglob("*.yaml")]
    marked = []

    def walk(node: object, where: str, path: Path) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key), path)
        elif node == "???":
            parent, _, key = where.rpartition(".")
            holder = OmegaConf.select(schema, parent) if parent else schema
            if holder is None or not OmegaConf.is_missing(holder, key):
                marked.append(f"{path}: {where}")

    for path, group in files:
        walk(yaml.safe_load(path.read_text()) or {}, group, path)
    assert not marked


# Group files that list every key of their group, defaults included; like every file they compose against
# the schema (test_every_group_option_composes).
FULL_LISTINGS = {"logging/default.yaml", "model/yue_s1_7b.yaml", "model/yue_s2_1b.yaml"}
