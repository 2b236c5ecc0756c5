"""Clean output: no library warnings or bars over the training bar; ``--quiet``/``--verbose`` on all three CLIs."""

from __future__ import annotations

import json
import subprocess

import pytest

from data_prep.cli import main as prep_main
from inference.cli import main as infer_main
from inference.evaluate import main as eval_main
from tests.training.helpers import PYTHON, REPO, cli_env
from yue_train.cli.train import main as train_main
from yue_train.training.output import NORMAL, QUIET, VERBOSE, VerbosityError, set_verbosity, split_verbosity

NOISE = ("Writing model shards", "Loading weights", "Warning", "[WARNING]", "warnings.warn", "wandb:")


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", module, *args], env=cli_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{") :])


def test_verbosity_flags_stand_anywhere():
    assert split_verbosity(["recipe=tiny", "-q"]) == (QUIET, ["recipe=tiny"])
    assert split_verbosity(["--verbose", "tokenize", "--out", "x"]) == (VERBOSE, ["tokenize", "--out", "x"])
    assert split_verbosity(["--quiet", "-q"]) == (QUIET, [])
    assert split_verbosity(["export", "a", "b"]) == (NORMAL, ["export", "a", "b"])
    with pytest.raises(VerbosityError):
        split_verbosity(["-q", "--verbose"])


@pytest.mark.parametrize(
    ("cli", "name"),
    [(train_main, "yue-train"), (prep_main, "yue-prep"), (infer_main, "yue-infer"), (eval_main, "yue-eval")],
)
def test_quiet_and_verbose_together_is_one_line(cli, name, capsys):
    assert cli(["--quiet", "--verbose", "--help"]) == 2
    assert capsys.readouterr().err == f"{name}: error: --quiet and --verbose contradict each other; give one\n"


@pytest.mark.slow
def test_training_output_is_clean_and_quiet_is_silent(tmp_path):
    run = tmp_path / "run"
    common = [f"trainer.run_dir={run}", "trainer.save_every=1", "data.demo_corpus.n_songs=20", "trainer.cpu_threads=1",
              "logging.progress=true", "logging.wandb.enabled=true", "logging.wandb.mode=offline"]  # fmt: skip
    # LoRA: the random base is saved at start, adapters at every step; W&B offline.
    res = _run("yue_train.cli.train", "recipe=tiny_lora", "trainer.max_steps=2", *common)
    assert res.returncode == 0, res.stderr[-3000:]
    err = res.stderr
    assert "2/2 [" in err  # the training bar
    assert not [n for n in NOISE if n in err], err
    assert "yue-train: W&B offline run in" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-1", "step-2"]
    # --quiet: the same run trained on to step 3: nothing on stderr, the summary on stdout.
    res = _run("yue_train.cli.train", "--quiet", "recipe=tiny_lora", "trainer.max_steps=3", *common)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr == ""
    assert _summary(res.stdout)["step"] == 3
    res = _run("yue_train.cli.train", "export", str(run / "checkpoints" / "latest"), str(tmp_path / "merged"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert not [n for n in NOISE[2:] if n in res.stderr], res.stderr  # DeepSpeed and transformers warnings


@pytest.fixture
def restore_verbosity():
    yield
    set_verbosity(NORMAL)


def test_prep_quiet_has_no_progress_bar(synthetic_corpus, tmp_path, capsys, restore_verbosity):
    args = ["tokenize", "--manifest", str(synthetic_corpus), "--root", str(synthetic_corpus.parent)]
    assert prep_main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "tokenize" in err and "song/s" in err  # the bar
    assert prep_main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "documents" in out  # the summary line only
