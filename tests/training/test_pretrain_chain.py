"""``yue-train chain``: phases in order, each from the previous one's weights, finished phases skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from yue_train.cli.chain import FINISHED_NAME, chain_main, read_finished, run_chain
from yue_train.config.compose import compose_config
from yue_train.training import trainer
from yue_train.training.logger import read_metrics
from yue_train.training.plan import plan_phase

TINY = ["pretrain/tiny_p1", "pretrain/tiny_p2", "pretrain/tiny_p3"]
PROMPT_ROLES = ("prompt_vocal", "prompt_inst", "prompt_mix")


# ------------------------------------------------------------------------------- chain logic (fast)
@pytest.fixture
def fake_training(monkeypatch):
    """Replace the trainer: records the phases run; a phase "stops" when its recipe is in ``stop``."""
    calls: list[str] = []
    stop: set[str] = set()

    def run_training(cfg):
        calls.append(cfg.recipe_name)
        Path(cfg.trainer.run_dir).mkdir(parents=True, exist_ok=True)
        status = "stopped by signal 15 at step 3; checkpoint saved" if cfg.recipe_name in stop else "finished"
        return {"status": status, "step": 3, "run_dir": str(cfg.trainer.run_dir), "path": Path("/p")}

    monkeypatch.setattr(trainer, "run_training", run_training)
    return calls, stop


def test_chain_skips_finished_phases_and_resumes_the_stopped_one(fake_training, tmp_path):
    calls, stop = fake_training
    ov = [f"trainer.runs_root={tmp_path}"]
    stop.add("pretrain_tiny_p2")
    out = run_chain(TINY, ov)
    assert calls == ["pretrain_tiny_p1", "pretrain_tiny_p2"]  # stopped: phase 3 needs phase 2's weights
    assert [s["status"] for s in out][0] == "finished" and out[1]["status"].startswith("stopped")
    assert read_finished(tmp_path / "pretrain_tiny_p1")["recipe"] == "pretrain/tiny_p1"
    assert read_finished(tmp_path / "pretrain_tiny_p2") is None
    assert read_finished(tmp_path / "pretrain_tiny_p1")["path"] == "/p"  # stored as plain JSON

    stop.clear()
    calls.clear()
    out = run_chain(TINY, ov)
    assert calls == ["pretrain_tiny_p2", "pretrain_tiny_p3"]
    assert [s["skipped"] for s in out] == [True, False, False]
    calls.clear()
    assert all(s["skipped"] for s in run_chain(TINY, ov)) and calls == []


def test_chain_composes_every_phase_before_training(fake_training, tmp_path):
    calls, _ = fake_training
    with pytest.raises(Exception, match="no_such_key"):
        run_chain(TINY, [f"trainer.runs_root={tmp_path}", "trainer.no_such_key=1"])
    assert calls == []


def test_chain_main_help_and_errors(fake_training, tmp_path, capsys):
    assert chain_main(["--help"]) == 0
    assert "yue-train chain RECIPE" in capsys.readouterr().out
    for argv, expected in [
        ([f"trainer.runs_root={tmp_path}"], "name at least one recipe"),
        (["pretrain/nope"], "unknown recipe 'pretrain/nope'"),
        (["pretrain/tiny_p1", "--fast"], "unknown option --fast"),
        (["pretrain/tiny_p1", "pretrain/tiny_p1"], "named twice"),
        (["pretrain/tiny_p1", "trainer.no_such_key=1"], "no_such_key"),
    ]:
        assert chain_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("yue-train: error: ") and expected in err[0], err
    assert fake_training[0] == []
    assert chain_main(["pretrain/tiny_p1", f"trainer.runs_root={tmp_path}"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "finished"


# --------------------------------------------------------------------------- the tiny chain (slow)
@pytest.mark.slow
def test_tiny_chain_trains_each_phase_from_the_previous_one(tmp_path):
    root = tmp_path / "runs"
    # trainer.max_steps only caps a trainer that ignores the token budgets (the plan overrides it).
    overrides = [f"trainer.runs_root={root}", "logging.wandb.enabled=false", "trainer.max_steps=12"]
    summaries = run_chain(TINY, overrides)
    runs = [root / f"pretrain_tiny_p{i}" for i in (1, 2, 3)]
    assert [s["status"] for s in summaries] == ["finished"] * 3
    rows = []
    for recipe, run, summary in zip(TINY, runs, summaries, strict=True):
        assert read_finished(run)["step"] == summary["step"]
        plan = plan_phase(compose_config([f"recipe={recipe}", *overrides]), world_size=1)
        assert summary["step"] == plan.max_steps  # the budget (max_tokens or rounds), not trainer.max_steps
        train_rows = [r for r in read_metrics(run) if "loss" in r]
        assert [r["step"] for r in train_rows] == list(range(1, plan.max_steps + 1))
        rows.append(train_rows)

    # Phases 2 and 3 start from the previous phase's final weights.
    saved = [OmegaConf.load(run / "config.yaml") for run in runs]
    assert saved[0].trainer.init_from is None
    assert [Path(s.trainer.init_from) for s in saved[1:]] == runs[:2]
    assert summaries[0]["init_from"] is None
    for previous, summary in zip(runs[:2], summaries[1:], strict=True):
        assert summary["init_from"] and Path(summary["init_from"]).is_relative_to(previous)
    first = [r[0]["loss"] for r in rows]
    assert first[0] > 10.5  # random init: about ln(83,968) = 11.3
    assert first[1] < first[0] - 2.0 and first[2] < first[0] - 2.0

    # ICL reference audio (prompt roles) is trained on in phase 3 only.
    for phase_rows in rows[:2]:
        keys = {k for r in phase_rows for k in r}
        assert not {f"{p}/{role}" for p in ("tokens", "loss") for role in PROMPT_ROLES} & keys
    assert all(rows[2][-1].get(f"tokens/{role}", 0) > 0 for role in PROMPT_ROLES), rows[2][-1]

    # Running the chain again trains nothing.
    stamps = [(run / FINISHED_NAME).stat().st_mtime_ns for run in runs]
    lines = [len(read_metrics(run)) for run in runs]
    again = run_chain(TINY, overrides)
    assert all(s["skipped"] for s in again)
    assert [(run / FINISHED_NAME).stat().st_mtime_ns for run in runs] == stamps
    assert [len(read_metrics(run)) for run in runs] == lines
