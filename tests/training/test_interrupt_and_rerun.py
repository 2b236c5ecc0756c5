"""No lost work: Ctrl-C saves like SIGTERM (a second Ctrl-C stops at once), and a finished run is left alone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.training.helpers import compose, signal_after_steps, start_training
from yue_train.cli.train import main
from yue_train.data.folder_lock import LOCK_NAME
from yue_train.training.checkpointing.publish import FAULT_ENV, latest_checkpoint
from yue_train.training.logger import METRICS, read_metrics
from yue_train.training.trainer import ABORTED, ABORTED_EXIT, run_training


def _ov(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}",
            "trainer.cpu_threads=1", *extra]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_the_same_command_resumes(random_shards, tmp_path):
    run = tmp_path / "run"
    proc = start_training(_ov(random_shards, run, "trainer.max_steps=100000", "trainer.save_every=0"))
    out, err = signal_after_steps(proc, run, signal.SIGINT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "yue-train: interrupted; saving a checkpoint at the end of this step" in err
    stopped = read_metrics(run)[-1]["step"]
    assert f"yue-train: stopped by signal SIGINT at step {stopped}; checkpoint saved" in err
    assert f'"status": "stopped by signal SIGINT at step {stopped}; checkpoint saved"' in out
    assert latest_checkpoint(run).name == f"step-{stopped}"
    summary = run_training(compose(*_ov(random_shards, run, f"trainer.max_steps={stopped + 2}")))
    assert summary["status"] == "finished" and summary["step"] == stopped + 2
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == list(range(1, stopped + 3))


@pytest.mark.slow
def test_second_ctrl_c_stops_at_once_without_saving(random_shards, tmp_path):
    run = tmp_path / "run"
    # The periodic save of step 3 pauses 120 s before it is published: both Ctrl-Cs land inside it.
    proc = start_training(_ov(random_shards, run, "trainer.max_steps=100", "trainer.save_every=3"),
                          **{FAULT_ENV: "during_save:3:120"})  # fmt: skip
    try:
        assert proc.stdout is not None
        while "[fault injection]" not in proc.stdout.readline():
            assert proc.poll() is None
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 60  # did not wait for the save to finish
    assert proc.returncode == ABORTED_EXIT, err
    assert err.splitlines()[-1] == f"yue-train: {ABORTED}" and "Traceback" not in err
    assert latest_checkpoint(run) is None  # the interrupted save was not published


def test_rerunning_a_finished_run_says_so_and_changes_nothing(random_shards, tmp_path, capsys):
    run = tmp_path / "run"
    args = _ov(random_shards, run, "trainer.max_steps=2", "trainer.eval_every=1", "data.eval_fraction=0.05")
    assert main(args) == 0
    assert any("eval/loss" in r for r in read_metrics(run))
    capsys.readouterr()

    def files() -> dict:  # the lock file aside: it holds the pid of the last process that opened the folder
        return {
            p: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME
        }

    before = files()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"yue-train: {run} already finished at step 2 (this config ends at step 2); nothing changed. To train "
        "further pass trainer.max_steps=M (M > 2), or pass trainer.resume=none to restart"
    ]
    after = files()
    assert after == before  # metrics.jsonl (no second eval row), config, checkpoints: all untouched
    assert (run / METRICS) in after
