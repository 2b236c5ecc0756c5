"""The recipe list a user sees: only runnable user recipes, each with a one-line description; user recipe
folders (``--recipes-dir``, ``$YUE_TRAIN_RECIPES_DIR``) join it; bases and duplicates are refused in one line;
every user recipe fixes its global batch and the released models ask for the real tokenizer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO, TEST_RECIPES
from yue_train.cli.train import main
from yue_train.config.compose import RECIPES_ENV, available_recipes, compose_config, find_recipes
from yue_train.training.plan import batch_geometry
from yue_train.training.validate import ConfigError, check_config, check_data

USER_RECIPES = sorted(
    p.relative_to(REPO / "recipes").with_suffix("").as_posix()
    for p in (REPO / "recipes").rglob("*.yaml")
    if not p.name.startswith("_")
)
MINE = """# @package _global_
# My recipe: the demo in three steps.
defaults:
  - /recipe/demo
recipe_name: mine
trainer:
  max_steps: 3
"""


@pytest.fixture
def no_test_recipes(monkeypatch):
    """The recipe folders of a user who installed the package: the built-in ones only."""
    monkeypatch.delenv(RECIPES_ENV, raising=False)


def listing(text: str) -> dict[str, str]:
    """name -> description from the ``recipes:`` block of ``yue-train --help``."""
    block = text.split("recipes:\n", 1)[1]
    rows = [line.strip().split(None, 1) for line in block.splitlines() if line.startswith("  ")]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yue-train: error: "), err
    return lines[0]


def test_help_lists_only_user_recipes_with_descriptions():
    env = {k: v for k, v in os.environ.items() if k != RECIPES_ENV}
    res = subprocess.run(
        [sys.executable, "-m", "yue_train.cli.train", "--help"], env=env, capture_output=True, text=True, check=True
    )
    shown = listing(res.stdout)
    assert sorted(shown) == USER_RECIPES
    assert {"demo", "lora_s1", "full_s1", "train_s2", "pretrain/phase1_warmup"} <= set(shown)
    assert not [n for n in shown if n.rpartition("/")[2].startswith(("tiny", "_"))]
    for name, description in shown.items():
        assert 20 <= len(description) <= 100, (name, description)


@pytest.mark.parametrize("folder", [REPO / "recipes", TEST_RECIPES], ids=["recipes", "tests/recipes"])
def test_description_is_the_first_comment_line_and_stands_alone(folder):
    for path in sorted(folder.rglob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "# @package _global_", path
        assert lines[1].startswith("# ") and len(lines[1]) <= 102, path
        assert lines[2] == "#" or not lines[2].startswith("#"), f"{path}: the description must fit on one line"


def test_test_and_base_recipes_are_not_runnable_user_recipes(no_test_recipes, monkeypatch):
    names = available_recipes()
    assert names == USER_RECIPES
    assert "pretrain/_base" in find_recipes(bases=True) and "pretrain/_base" not in find_recipes()
    monkeypatch.setenv(RECIPES_ENV, str(TEST_RECIPES))
    assert {"tiny", "pretrain/tiny_p1"} <= set(available_recipes())
    assert "pretrain/_tiny" not in available_recipes()


def test_a_base_is_refused_in_one_line(no_test_recipes, capsys):
    assert main(["recipe=pretrain/_base", "--print-config"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "'pretrain/_base' is a base" in line and "pick one of: demo" in line


def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my_recipes"
    (folder / "team").mkdir(parents=True)
    (folder / "team" / "mine.yaml").write_text(MINE)
    (folder / "team" / "_shared.yaml").write_text("# @package _global_\n# A base of mine.\n")
    return folder


@pytest.mark.parametrize("how", ["--recipes-dir", "env"])
def test_a_user_recipe_folder_is_picked_up(how, tmp_path, no_test_recipes, monkeypatch, capsys):
    folder = user_folder(tmp_path)
    if how == "env":
        monkeypatch.setenv(RECIPES_ENV, str(folder))
        args = []
    else:
        args = ["--recipes-dir", str(folder)]
    assert main([*args, "--help"]) == 0
    shown = listing(capsys.readouterr().out)
    assert shown["team/mine"] == "My recipe: the demo in three steps."
    assert "team/_shared" not in shown and "demo" in shown
    assert main([*args, "recipe=team/mine", "--print-config"]) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    assert cfg.recipe_name == "mine" and cfg.trainer.max_steps == 3  # its own keys over the demo's
    assert cfg.trainer.eval_every == 40 and cfg.model.name == "tiny_s1"  # the rest from the built-in demo


def test_a_duplicate_name_is_refused_in_one_line(tmp_path, no_test_recipes, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "demo.yaml").write_text(MINE)
    assert main(["--recipes-dir", str(folder), "--help"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "recipe 'demo' is defined twice" in line and str(folder / "demo.yaml") in line and "rename one" in line


@pytest.mark.parametrize("recipe", USER_RECIPES)
def test_every_user_recipe_fixes_the_global_batch(recipe, no_test_recipes):
    raw = OmegaConf.load(REPO / "recipes" / f"{recipe}.yaml")
    assert "grad_accum" not in (raw.get("trainer") or {})  # derived from the global batch, per process count
    cfg = compose_config([f"recipe={recipe}"])
    wanted = cfg.trainer.global_batch_size
    assert isinstance(wanted, int) and wanted >= 1
    for world in (w for w in (1, 2, 4, 8) if wanted % (w * cfg.data.batch_size) == 0):
        global_batch, micro, accum = batch_geometry(cfg, world)
        assert global_batch == micro * accum * world == wanted


def test_demo_keeps_one_row_per_step(no_test_recipes):
    assert batch_geometry(compose_config(["recipe=demo"]), 1) == (1, 1, 1)


@pytest.mark.parametrize("recipe", ["lora_s1", "full_s1", "train_s2", "pretrain/phase1_warmup", "pretrain/s2_pretrain"])
def test_released_models_ask_for_the_real_tokenizer(recipe, no_test_recipes):
    cfg = compose_config([f"recipe={recipe}", "data.train=[{path: /nowhere}]"])
    with pytest.raises(ConfigError) as e:
        check_data(cfg, check_config(cfg))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"model.tokenizer: {cfg.model.name} needs the YuE tokenizer")
    assert message.endswith("pass model.tokenizer=/path/to/tokenizer.model")


@pytest.mark.parametrize("recipe", ["pretrain/phase1_warmup", "pretrain/s2_pretrain"])
def test_the_real_tokenizer_passes(recipe, no_test_recipes, real_tokenizer_path, tmp_path):
    """With the YuE tokenizer.model given, validation gets past the tokenizer (to the missing data)."""
    cfg = compose_config([f"recipe={recipe}", f"model.tokenizer={real_tokenizer_path}", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^data\.train\[0\]\.path: "):
        check_data(cfg, check_config(cfg))
