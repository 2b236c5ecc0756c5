"""The offline wheelhouse (benchmarks/wheelhouse.sh), proven on the reference GPU node image.

A fresh venv gets only the reference image's packages at its versions (transformers 5.17.0, accelerate 1.15.0,
huggingface-hub 1.33.0, ...; benchmarks/wheelhouse.py names them). Then, with no network at all (a new network
namespace, ``unshare -n``) and pip's configuration files off, ``gpu_suite.sh --cpu-smoke --wheelhouse`` installs
the project and the wheelhouse with ``--no-index`` and runs its parts, and the installed ``yue-train`` trains two
demo steps. A wheel missing from the wheelhouse fails the install; a reach for the network fails the run.

Stand-ins, because this machine has no CUDA build of torch 2.11 and its Python is 3.11: torch is the CPU
build installed here (2.13.0), borrowed by symlinks rather than unpacked again, and numpy is the newest for the
running Python (numpy 2.5 needs 3.12). The wheelhouse is built for the running Python; benchmarks/wheelhouse.sh
builds the 3.12 one the same way. triton is not installed: torch's CPU build does not use it. The code's
torch APIs were checked against torch 2.11's source (see pyproject.toml's bounds).

Cost: the wheelhouse is cached in .whl/ (keyed by the requirements; the project's own wheel is rebuilt each
run) and pip's own cache serves the reference packages.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from tests.conftest import REPO

# One worker runs both tests: they share the module's wheelhouse (.whl/, rebuilt in place) and venv.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheelhouse")]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
WHEELHOUSE = REPO / ".whl" / f"cp{sys.version_info.major}{sys.version_info.minor}"
NOT_INSTALLED = {"torch", "triton"}  # torch: borrowed (see above); triton: GPU only


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("PYTHONPATH", "YUE_", "WANDB_", "PIP_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true", **extra)
    return env


def run(cmd: list, cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd[:4]}: {res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res


def no_network_prefix() -> list[str]:
    """A new network namespace (``unshare -n``) with only its loopback up: no address outside this machine, while
    the suite's two-process FSDP2 step still meets on 127.0.0.1."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("unshare or ip (util-linux, iproute2) is missing: cannot cut the network off")
    prefix = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "offline"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n needs root or user namespaces: cannot cut the network off")
    return prefix


def require_pypi() -> None:
    """Building the wheelhouse and the reference venv needs PyPI (pip's cache serves what it already holds)."""
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as err:
        pytest.skip(f"PyPI is unreachable ({err}): the wheelhouse and the reference venv are built from it")


@pytest.fixture(scope="module")
def wheelhouse() -> dict:
    require_pypi()
    env = clean_env(PYTHON=sys.executable)
    run(["bash", REPO / "benchmarks" / "wheelhouse.sh", WHEELHOUSE, "--python-version", PYTHON_VERSION], REPO, env)
    return json.loads((WHEELHOUSE / "MANIFEST.json").read_text())


def borrow_torch(site: Path, store: Path) -> list[str]:
    """Links this interpreter's torch into ``store`` (on the venv's path through a .pth file); returns torch's
    own requirements for pip to install."""
    dist = importlib.metadata.distribution("torch")
    store.mkdir()
    for top in {str(f).split("/")[0] for f in dist.files or []} - {".."}:
        (store / top).symlink_to(Path(str(dist.locate_file(top))))
    (site / "_borrowed_torch.pth").write_text(f"{store}\n")
    env = {**default_environment(), "extra": ""}
    return [str(r) for r in map(Requirement, dist.requires or []) if r.marker is None or r.marker.evaluate(env)]


@pytest.fixture(scope="module")
def reference_venv(tmp_path_factory, wheelhouse) -> Path:
    """A venv holding only the reference image's packages, at the versions the wheelhouse was resolved against."""
    tmp = tmp_path_factory.mktemp("reference")
    venv = tmp / "venv"
    env = clean_env()
    run([sys.executable, "-m", "venv", venv], tmp, env)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    torch_requires = borrow_torch(site, tmp / "borrowed")
    pins = {Requirement(p).name.lower().replace("_", "-"): p for p in wheelhouse["image"]}
    roots = [Requirement(r).name.lower() for r in wheelhouse["reference_image"]]
    image = [pins[name] for name in roots if name not in NOT_INSTALLED]
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", *image, *torch_requires], tmp, env)
    return venv


def test_wheelhouse_fits_and_holds_no_image_package(wheelhouse):
    assert wheelhouse["python_version"] == PYTHON_VERSION
    assert wheelhouse["core_with_checkout_mib"] <= 48.0
    assert "flash-attn" in wheelhouse["left_out"]
    core = {f.split("-")[0].lower() for f in wheelhouse["core"]}
    image = {Requirement(p).name.lower().replace("-", "_") for p in wheelhouse["image"]}
    assert not core & image
    assert {"yue_train", "hydra_core", "omegaconf", "antlr4_python3_runtime", "deepspeed", "wandb"} <= core
    assert {"bitsandbytes", "liger_kernel"} <= {f.split("/")[1].split("-")[0] for f in wheelhouse["optional"]}
    assert all(f.endswith("-py3-none-any.whl") for f in wheelhouse["core"] if f.startswith(("antlr4", "deepspeed")))
    on_disk = sum((WHEELHOUSE / f).stat().st_size for f in wheelhouse["core"]) / 2**20
    assert abs(on_disk - wheelhouse["core_mib"]) < 0.01


def test_offline_install_on_the_reference_image_runs_the_suite_and_trains(reference_venv, wheelhouse, tmp_path):
    offline = no_network_prefix()
    python = reference_venv / "bin" / "python"
    versions = run([python, "-c", "import json, transformers, accelerate, huggingface_hub, peft; print(json.dumps("
                    "[transformers.__version__, accelerate.__version__, huggingface_hub.__version__]))"],
                   tmp_path, clean_env()).stdout  # fmt: skip
    assert json.loads(versions) == ["5.17.0", "1.15.0", "1.33.0"]

    env = clean_env(PYTHON=str(python), PATH=f"{reference_venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "suite.json"
    suite = REPO / "benchmarks" / "gpu_suite.sh"
    res = subprocess.run([*offline, "bash", suite, "--cpu-smoke", "--wheelhouse", WHEELHOUSE, "--out", out],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip
    report = json.loads(out.read_text())
    assert res.returncode == 0, json.dumps({k: s.get("stderr_tail", s["rc"]) for k, s in report["steps"].items()})
    steps = report["steps"]
    assert list(steps) == ["install", "lora_7b", "music_30s", "full_1b", "codec"]
    assert all(s["rc"] == 0 for s in steps.values())
    assert [r["mode"] for r in steps["lora_7b"]["result"]["rows"]] == ["ours", "official", "ours:chunked"]
    assert all(10 < r["loss"] < 12 for r in steps["lora_7b"]["result"]["rows"])  # ~ln(83,968) at random init
    assert steps["music_30s"]["result"]["stage2"]["fast"]["per_s"] > 0

    # the installed package (no checkout on the path) trains two demo steps, still without network
    runs = tmp_path / "runs"
    res = run([*offline, reference_venv / "bin" / "yue-train", "recipe=demo", "trainer.max_steps=2",
               f"trainer.runs_root={runs}", "data.demo_corpus.n_songs=20", "trainer.eval_max_batches=1",
               "logging.progress=false"], tmp_path, env)  # fmt: skip
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["status"] == "finished" and summary["step"] == 2
    import_path = run([python, "-c", "import yue_train; print(yue_train.__file__)"], tmp_path, env).stdout.strip()
    assert Path(import_path).resolve().is_relative_to(reference_venv.resolve())
