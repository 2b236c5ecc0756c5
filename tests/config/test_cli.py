"""``yue-train`` with a bad override: exactly one ``yue-train: error:`` line, exit 2, nothing run; and
``--print-config``: the resolved config as valid YAML with each key's doc as a comment."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from omegaconf import OmegaConf

from yue_train.cli.train import main
from yue_train.config.compose import available_recipes, compose_config
from yue_train.config.schema import RootConfig


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=five", "trainer.max_steps: expected an integer, got 'five'"),
        ("+trainer.max_step=5", "unknown config key trainer.max_step (did you mean trainer.max_steps?)"),
        (
            "trainer.loss.impl=fast",
            "trainer.loss.impl must be one of auto, full, chunked, chunked_recompute, fused, got 'fast'",
        ),
    ],
)
def test_bad_override_is_one_error_line(override, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["recipe=tiny", override, f"trainer.run_dir={run_dir}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"yue-train: error: {message}"]
    assert not run_dir.exists()  # failed before any run folder, corpus or model


def _documented(cls: type) -> list[str]:
    """Every doc string of ``cls`` and the dataclasses below it."""
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("doc"):
            out.append(f.metadata["doc"])
        inner = f.default_factory if callable(f.default_factory) else None
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            out += _documented(inner)
    return out


@pytest.mark.parametrize("recipe", available_recipes())
def test_print_config_is_the_resolved_config_as_yaml(recipe, capsys):
    assert main([f"recipe={recipe}", "--print-config"]) == 0
    text = capsys.readouterr().out
    cfg = compose_config([f"recipe={recipe}"])
    assert yaml.safe_load(text) == OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def test_print_config_shows_each_keys_doc(capsys):
    assert main(["recipe=tiny", "trainer.max_steps=3", "--print-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("recipe_name: tiny  ") and "# run name" in lines[0]
    steps = [x for x in lines if x.strip().startswith("max_steps:")]
    assert steps == [f"  {'max_steps: 3'.ljust(40)}  # optimizer steps (unless max_tokens or rounds set the budget)"]
    text = "\n".join(lines)
    missing = [d for d in _documented(RootConfig) if f"# {d}" not in text]
    assert not missing  # every documented key of the schema shows its doc


def test_print_config_error_is_one_line(capsys):
    assert main(["recipe=tiny", "trainer.seed=${trainer.run_dir}", "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["yue-train: error: trainer.seed: expected an integer, got 'runs/tiny'"]
