"""benchmarks/wheelhouse.py's split of one pip resolution into the image's, the core and the optional sets."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "benchmarks" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheelhouse)


def item(name: str, *requires: str) -> dict:
    return {"metadata": {"name": name, "version": "1.0", "requires_dist": list(requires)}}


REPORT = {
    "install": [
        item("torch", "filelock", "nvidia-nccl; platform_system == 'Linux'", "pywin; sys_platform == 'win32'"),
        item("filelock"),
        item("nvidia_nccl"),
        item("pywin"),
        item("yue-train", "torch>=2.9", "Hydra-Core", "deepspeed; extra == 'deepspeed'", "selenium; extra == 'dev'"),
        item("hydra-core", "omegaconf"),
        item("omegaconf", "antlr4-python3-runtime==4.9.*", "tomli; python_version < '3.11'"),
        item("antlr4-python3-runtime"),
        item("tomli"),
        item("deepspeed", "torch", "ninja"),
        item("ninja"),
        item("selenium"),
        item("bitsandbytes", "torch", "scipy"),
        item("scipy"),
    ]
}


def test_sets_follow_markers_extras_and_the_target_python():
    image = wheelhouse.closure(REPORT, ["torch==2.11.0"], "3.12")
    assert image == {"torch", "filelock", "nvidia-nccl"}  # the win32-only requirement stays out
    core = wheelhouse.closure(REPORT, ["yue-train[deepspeed]"], "3.12") - image
    assert core == {"yue-train", "hydra-core", "omegaconf", "antlr4-python3-runtime", "deepspeed", "ninja"}
    assert "tomli" in wheelhouse.closure(REPORT, ["yue-train"], "3.10")  # python_version of the target, not ours
    assert wheelhouse.closure(REPORT, ["bitsandbytes"], "3.12") - image - core == {"bitsandbytes", "scipy"}


def test_reference_image_numpy_for_older_targets():
    assert "numpy==2.5.*" in wheelhouse.reference_image("3.12")
    assert "numpy<2.5" in wheelhouse.reference_image("3.11") and "numpy==2.5.*" not in wheelhouse.reference_image(
        "3.11"
    )
