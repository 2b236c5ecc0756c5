"""The package as a user installs it: a wheel built from the repository, installed into a fresh venv, runs the
three CLIs from a folder outside the checkout; configs and recipes come from the wheel's package data.

The fresh venv borrows the heavy dependencies (torch, transformers, ...) from this interpreter's
site-packages through a ``.pth`` line instead of installing them again; the repository's own packages come
only from the wheel (no ``PYTHONPATH``, no editable finder: ``.pth`` files of a path added that way are not
run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
NOT_SHIPPED = {"tests"}  # top-level packages of the checkout that stay out of the wheel


def packages_on_disk() -> set[str]:
    """Every folder holding Python files under the checkout's top-level packages, as a dotted name."""
    tops = [p.parent for p in REPO.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED]
    found = set()
    for top in tops:
        for py in top.rglob("*.py"):
            if "__pycache__" not in py.parts:
                found.add(".".join(py.parent.relative_to(REPO).parts))
    return found


def test_pyproject_lists_every_package():
    """The explicit ``packages`` list names every package folder (a folder left out is missing from the wheel)."""
    listed = set(SETUPTOOLS["packages"])
    data = set(SETUPTOOLS["package-dir"])  # conf/ and recipes/, shipped as yue_train.resources.*
    assert data == {"yue_train.resources.conf", "yue_train.resources.recipes"}
    assert listed - data == packages_on_disk()
    for name, folder in SETUPTOOLS["package-dir"].items():
        assert list((REPO / folder).rglob("*.yaml")), f"{name}: no YAML under {folder}"
        assert name in SETUPTOOLS["package-data"]
    for target in PYPROJECT["project"]["scripts"].values():
        assert target.split(":")[0].rpartition(".")[0] in listed


def source_files() -> list[Path]:
    """The checkout's files that git keeps (tracked, or new and not ignored); build outputs stay behind."""
    res = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        pytest.skip("not a git checkout: cannot tell source files from build outputs")
    return [REPO / line for line in res.stdout.splitlines() if (REPO / line).is_file()]


def run(cmd: list[str | Path], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's bin folder, a clean environment, a working folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for f in source_files():
        dest = src / f.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "YUE_", "WANDB_"))}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", src], cwd=tmp, env=env)
    (wheel,) = (tmp / "dist").glob("yue_train-*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    deps = [p for p in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")} if p]
    (site / "_yue_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    run([*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel], cwd=tmp, env=env)
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", env, work


@pytest.mark.slow
def test_the_wheel_is_what_gets_imported(installed):
    bin_dir, env, work = installed
    code = (
        "import json, yue_train, data_prep, inference\n"
        "from yue_train.config.compose import conf_dir, recipe_dirs\n"
        "print(json.dumps([yue_train.__file__, data_prep.__file__, inference.__file__,"
        " str(conf_dir()), str(recipe_dirs()[0])]))"
    )
    paths = json.loads(run([bin_dir / "python", "-c", code], cwd=work, env=env).stdout)
    venv = bin_dir.parent.resolve()
    for p in paths:
        assert Path(p).resolve().is_relative_to(venv), p  # not the checkout, not an editable install
    assert (Path(paths[3]) / "config.yaml").is_file() and (Path(paths[4]) / "demo.yaml").is_file()


@pytest.mark.slow
def test_installed_clis_run_from_any_folder(installed):
    bin_dir, env, work = installed
    out = run([bin_dir / "yue-train", "--help"], cwd=work, env=env).stdout
    recipes = out.split("recipes:\n", 1)[1]
    for name in ("demo", "lora_s1", "full_s1", "train_s2", "pretrain/phase1_warmup"):
        assert f"  {name} " in recipes
    assert "tiny" not in recipes and "_base" not in recipes

    runs = work / "runs"
    res = run(
        [
            bin_dir / "yue-train",
            "recipe=demo",
            "trainer.max_steps=2",
            f"trainer.runs_root={runs}",
            "data.demo_corpus.n_songs=20",
            "trainer.eval_max_batches=1",
            "logging.progress=false",
        ],
        cwd=work,
        env=env,
    )
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["status"] == "finished" and summary["step"] == 2
    assert (runs / "demo" / "checkpoints" / "latest").exists()

    assert "demo" in run([bin_dir / "yue-prep", "demo", "--help"], cwd=work, env=env).stdout
    res = run([bin_dir / "yue-prep", "demo", "--out", work / "prep", "--songs", "2"], cwd=work, env=env)
    assert "cot" in res.stdout and list((work / "prep" / "shards" / "cot").glob("*.tar"))
    assert "generate" in run([bin_dir / "yue-infer", "--help"], cwd=work, env=env).stdout
    assert not list(work.glob("*.egg-info")) and not (work / "outputs").exists()
