"""W&B is offline unless asked for; online without a login fails in one line before anything is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.helpers import compose
from yue_train.cli.train import main
from yue_train.training.logger import has_wandb_credentials, wandb_mode

REAL_RECIPES = [
    "lora_s1", "full_s1", "train_s2", "demo", "pretrain/phase1_warmup", "pretrain/phase2_constant",
    "pretrain/phase3_longctx", "pretrain/phase4_anneal", "pretrain/reanneal", "pretrain/s2_pretrain",
]  # fmt: skip


@pytest.fixture
def no_login(monkeypatch, tmp_path) -> Path:
    """A machine with no W&B credentials: empty home, no key in the environment, no WANDB_MODE."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_DISABLED", "WANDB_BASE_URL",
                "WANDB_CONFIG_DIR", "NETRC"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.mark.parametrize("recipe", REAL_RECIPES)
def test_recipes_log_offline_unless_asked(recipe):
    assert compose(f"recipe={recipe}").logging.wandb.mode == "offline"
    assert compose(f"recipe={recipe}", "logging=online").logging.wandb.mode == "online"


def test_credentials_are_found_where_wandb_looks(no_login, monkeypatch):
    assert not has_wandb_credentials()
    netrc = no_login / ".netrc"
    netrc.write_text("machine example.org login user password secret\n")
    netrc.chmod(0o600)
    assert not has_wandb_credentials()  # another host's entry is no W&B login
    netrc.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert has_wandb_credentials()  # what `wandb login` writes
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_wandb_credentials()  # a private server needs its own entry
    monkeypatch.delenv("WANDB_BASE_URL")
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert has_wandb_credentials()


def test_wandb_mode_env_keeps_a_machine_offline(no_login, monkeypatch):
    wcfg = compose("recipe=lora_s1", "logging=online").logging.wandb
    assert wandb_mode(wcfg) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode(wcfg) == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(wcfg) == "disabled"


@pytest.mark.parametrize("online", [["logging=online"], ["logging.wandb.mode=online"]])
def test_online_without_login_fails_in_one_line_before_loading(no_login, tmp_path, capsys, online):
    run = tmp_path / "run"
    rc = main(["recipe=tiny", f"trainer.run_dir={run}", "logging.wandb.enabled=true", *online])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("yue-train: error: logging.wandb.mode=online")
    assert "wandb login" in err and "logging.wandb.mode=offline" in err
    assert not run.exists()  # nothing written: no generated corpus, config or model
