"""One writer per run folder, resume only under a compatible config, no foreign folder written over, and
no metric line twice after a kill before the first checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.helpers import compose, random_run_overrides, start_training
from yue_train.cli.train import main
from yue_train.data.folder_lock import LOCK_NAME, FolderBusyError
from yue_train.training.checkpointing.run_folder import config_changes
from yue_train.training.logger import read_metrics
from yue_train.training.trainer import run_training


def _overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return random_run_overrides(shards, run_dir, *extra, max_steps=2, save_every=2)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


@pytest.mark.slow
def test_a_second_run_on_a_busy_folder_exits_naming_the_holder(random_shards, tmp_path, capsys):
    run = tmp_path / "run"
    first = start_training(_overrides(random_shards, run, "trainer.max_steps=100000", "trainer.save_every=0"))
    try:
        deadline = time.monotonic() + 120
        while not read_metrics(run):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        lines_before = len(read_metrics(run))
        assert main(_overrides(random_shards, run, "trainer.max_steps=3")) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [
            f"yue-train: error: run folder {run} is in use by process {first.pid}; wait for it to finish, stop it, "
            "or choose another folder"
        ]
        assert first.poll() is None and len(read_metrics(run)) >= lines_before  # the first run goes on
        assert not (run / "checkpoints").exists()
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)


def test_resume_with_another_seed_stops_naming_the_key(random_shards, run, capsys):
    before = _files(run)
    assert main(_overrides(random_shards, run, "trainer.max_steps=6", "trainer.seed=7")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"yue-train: error: {run}/checkpoints/step-4 was trained with another")
    assert "trainer.seed: 42 -> 7" in err[0] and "trainer.allow_config_change=[trainer.seed]" in err[0]
    assert _files(run) == before  # config.yaml, plan.json, metrics and checkpoints untouched


def test_another_recipe_on_a_run_folder_stops_before_writing(random_shards, run, capsys):
    before = _files(run)
    assert main(["recipe=tiny_s2", f"trainer.run_dir={run}", "trainer.max_steps=6"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "was trained with another config" in err[0], err
    assert "another config: recipe_name: tiny_random -> tiny_s2; model.name: tiny_v512 -> tiny_s2;" in err[0]
    assert _files(run) == before and not (run / "demo_corpus").exists()


def test_allowed_changes_resume(random_shards, run):
    # learning rate, budget, logging and checkpoint cadence change freely; the seed with the flag
    extra = ("trainer.max_steps=5", "optim.lr=5e-4", "trainer.log_every=2", "trainer.keep_last=2")
    summary = run_training(compose(*_overrides(random_shards, run, *extra, "trainer.seed=7",
                                               "trainer.allow_config_change=[trainer.seed]")))  # fmt: skip
    assert summary["step"] == 5 and summary["status"] == "finished"
    assert "seed: 7" in (run / "config.yaml").read_text()


def test_config_changes_compares_identity_keys_only():
    old = {
        "recipe_name": "a", "model": {"name": "m", "dtype": "auto"}, "optim": {"lr": 1.0},
        "data": {"train": [{"path": "/x", "rounds": 1.0}], "seq_len": 256}, "trainer": {"seed": 1, "max_steps": 5},
    }  # fmt: skip
    new = json.loads(json.dumps(old))
    new["model"]["dtype"], new["optim"]["lr"], new["trainer"]["max_steps"] = "bfloat16", 2.0, 9
    new["data"]["train"][0]["rounds"] = 3.0
    assert config_changes(old, new) == []
    new["data"]["train"].append({"path": "/y"})
    new["data"]["train"][0]["path"] = "/z"
    new["data"]["seq_len"] = 512
    assert config_changes(old, new) == [
        ("data.train.count", 1, 2), ("data.train[0].path", "/x", "/z"), ("data.seq_len", 256, 512),
    ]  # fmt: skip


def test_a_run_dir_of_other_files_is_refused(random_shards, tmp_path, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("mine: true\n")
    (folder / "notes.txt").write_text("keep\n")
    assert main(_overrides(random_shards, folder)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"yue-train: error: trainer.run_dir={folder} holds files that are not a yue-train run (config.yaml, "
        "notes.txt); choose a new or empty folder"
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "notes.txt"]
    assert (folder / "config.yaml").read_text() == "mine: true\n"


@pytest.mark.slow
def test_a_kill_before_the_first_checkpoint_leaves_no_step_twice(random_shards, tmp_path):
    run = tmp_path / "run"
    args = _overrides(random_shards, run, "trainer.max_steps=100000", "trainer.save_every=0")
    proc = start_training(args)
    try:
        deadline = time.monotonic() + 120
        while len(read_metrics(run)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run / "checkpoints").exists()
    assert run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=3")))["step"] == 3
    steps = [r["step"] for r in read_metrics(run) if "loss" in r]
    assert steps == [1, 2, 3]


def test_the_lock_goes_with_the_process(random_shards, run):
    """After a SIGKILL the folder is free at once (an advisory lock held by an open file)."""
    proc = subprocess.Popen(
        ["python3", "-c", f"import fcntl,os,time; fd=os.open('{run / LOCK_NAME}', os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(FolderBusyError, match="is in use by"):
        run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=5")))
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=5")))["step"] == 5
