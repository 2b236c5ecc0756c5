"""An offline wheelhouse: every wheel yue-train needs beyond a reference GPU node image, for one target Python.

  python benchmarks/wheelhouse.py DIR [--python-version 3.12]       (benchmarks/wheelhouse.sh wraps this)

Runs where pip reaches PyPI. Writes into DIR:
  *.whl           the core set: the project's own wheel and its dependencies (with the ``deepspeed`` extra)
                  that the reference image lacks; at most 48 MiB together with the checkout's files
  optional/*.whl  bitsandbytes (QLoRA) and liger-kernel (the fused loss) with what they bring
  MANIFEST.json   what is in both sets, their sizes, what was left out and why

One ``pip install --dry-run --report`` resolves the reference image, the project and the optional packages
together for x86-64 Linux and the target CPython (PyPI's metadata files, no wheel downloaded); the sets are
then told apart by walking the dependency graph of that report from each set's roots, so the versions agree
across sets. pip's own resolver does the resolving; the graph walk is hand-written because pip reports one
resolution, not which root pulled in which package. sdist-only packages are built here into pure wheels:
antlr4-python3-runtime (omegaconf's parser) and deepspeed with ``DS_BUILD_OPS=0`` (its ops compile on the
GPU node at first use, through the ninja wheel). flash-attn is left out: PyPI has only its sdist, whose
build needs a CUDA toolchain and hours; the attention paths without it cover packed training.

With a MANIFEST.json whose key (the project's requirements, the reference image, the target) matches, only
the project's own wheel is rebuilt: a cached wheelhouse costs seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
LIMIT_MIB = 48.0
# The reference GPU node image: what a typical CUDA training image already holds. numpy 2.5 needs
# Python >= 3.12; for an older target the newest numpy that installs there stands in for it.
REFERENCE_IMAGE = [
    "torch==2.11.0",
    "transformers==5.17.0",
    "accelerate==1.15.0",
    "numpy==2.5.*",
    "huggingface-hub==1.33.0",
    "peft",
    "safetensors",
    "sentencepiece",
    "tokenizers",
    "triton",
    "xxhash",
    "pyyaml",
    "matplotlib",
    "tqdm",
    "pyarrow",
    "fsspec",
]
# pytest: benchmarks/gpu_suite.sh runs the `gpu` tests with it
CORE_ROOTS = ["yue-train[deepspeed]", "pytest"]
OPTIONAL_ROOTS = ["bitsandbytes", "liger-kernel"]
LEFT_OUT = {"flash-attn": "PyPI has only its sdist; building it needs a CUDA toolchain and hours"}
# sdist-only on PyPI: built here into pure-Python wheels (extra environment for the build)
BUILT_HERE = {"antlr4-python3-runtime==4.9.3": {}, "deepspeed>=0.15": {"DS_BUILD_OPS": "0"}}
MANYLINUX = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def reference_image(python_version: str) -> list[str]:
    """The reference image's requirements for a target Python (numpy 2.5 exists for 3.12 and newer only)."""
    major_minor = tuple(int(p) for p in python_version.split(".")[:2])
    return [("numpy<2.5" if r.startswith("numpy") and major_minor < (3, 12) else r) for r in REFERENCE_IMAGE]


def target_args(python_version: str) -> list[str]:
    abi = "cp" + python_version.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi", abi]
    for platform in MANYLINUX:
        args += ["--platform", platform]
    return args


def marker_environment(python_version: str) -> dict[str, str]:
    env = default_environment()
    env.update(
        python_version=python_version,
        python_full_version=python_version + ".0",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def closure(report: dict, roots: Iterable[str], python_version: str) -> set[str]:
    """Canonical names of the report's packages that the roots need, following the requirements (and the
    extras asked for) whose markers hold on the target."""
    by_name = {canonical(item["metadata"]["name"]): item["metadata"] for item in report["install"]}
    env = marker_environment(python_version)
    seen: set[tuple[str, str]] = set()
    todo = [(canonical(r.name), extra) for r in map(Requirement, roots) for extra in ("", *r.extras)]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen or name not in by_name:
            continue
        seen.add((name, extra))
        for line in by_name[name].get("requires_dist", []):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                todo += [(canonical(req.name), e) for e in ("", *req.extras)]
    return {name for name, _ in seen}


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd[:8]), "..." if len(cmd) > 8 else "", file=sys.stderr)
    subprocess.run(cmd, check=True, **kwargs)


def source_copy(tmp: Path) -> Path:
    """The checkout's files that git keeps, copied into tmp: the build leaves its egg-info and build/ there, not
    in the checkout (where an egg-info on PYTHONPATH would pass for an installed yue-train)."""
    res = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        return REPO  # not a git checkout: build in place
    for line in res.stdout.splitlines():
        if (REPO / line).is_file():
            (tmp / line).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / line, tmp / line)
    return tmp


def build_local_wheels(dest: Path, pip: list[str], build_pip: list[str]) -> None:
    """The project's own wheel and the sdist-only packages, as pure wheels in dest."""
    for old in dest.glob("yue_train-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        run(
            [
                *build_pip,
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(dest),
                str(source_copy(Path(tmp))),
            ]
        )
    for spec, extra_env in BUILT_HERE.items():
        name = canonical(Requirement(spec).name).replace("-", "_")
        if any(dest.glob(f"{name}-*.whl")):
            continue
        # deepspeed's setup.py imports torch: it builds in the environment that has torch, not in isolation
        tool = build_pip if extra_env else pip
        isolation = ["--no-build-isolation"] if extra_env else []
        run([*tool, "wheel", "-q", "--no-deps", *isolation, "-w", str(dest), spec], env={**os.environ, **extra_env})


def resolve(dest: Path, pip: list[str], python_version: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        roots = [*reference_image(python_version), *CORE_ROOTS, *OPTIONAL_ROOTS]
        run([*pip, "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report),
             "--target", str(Path(tmp) / "target"), "--find-links", str(dest), *target_args(python_version),
             *roots])  # fmt: skip
        return json.loads(report.read_text())


def file_name(item: dict) -> str:
    return item["download_info"]["url"].rsplit("/", 1)[-1]


def mib(paths: Iterable[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 2**20


def checkout_mib() -> float:
    """Size of the checkout's tracked files as a gzip'd archive (what a user copies beside the wheelhouse)."""
    res = subprocess.run(["git", "archive", "--format=tar.gz", "HEAD"], cwd=REPO, capture_output=True, check=False)
    return len(res.stdout) / 2**20 if res.returncode == 0 else 0.0


def cache_key(python_version: str) -> str:
    """What decides the wheelhouse's content: the target, the roots and the project's requirements."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        project = tomllib.loads(pyproject)["project"]
        pyproject = json.dumps([project["dependencies"], project.get("optional-dependencies", {})])
    except ImportError:  # Python 3.10: the whole file decides
        pass
    text = json.dumps([python_version, reference_image(python_version), CORE_ROOTS, OPTIONAL_ROOTS, pyproject])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(dest: Path, python_version: str, build_python: str) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "optional").mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    build_pip = [build_python, "-m", "pip"]
    manifest_path = dest / "MANIFEST.json"
    key = cache_key(python_version)
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    cached = old.get("key") == key and all((dest / f).exists() for f in old.get("core", []) + old.get("optional", []))
    build_local_wheels(dest, pip, build_pip)
    if not cached:
        report = resolve(dest, pip, python_version)
        image = closure(report, reference_image(python_version), python_version)
        core = closure(report, CORE_ROOTS, python_version) - image
        optional = closure(report, OPTIONAL_ROOTS, python_version) - image - core
        items = {canonical(i["metadata"]["name"]): i for i in report["install"]}
        for names, folder in ((core, dest), (optional, dest / "optional")):
            wanted = {file_name(items[n]) for n in names}
            for stale in folder.glob("*.whl"):
                if stale.name not in wanted and not stale.name.startswith("yue_train-"):
                    stale.unlink()
            missing = [f"{items[n]['metadata']['name']}=={items[n]['metadata']['version']}" for n in sorted(names)
                       if not (folder / file_name(items[n])).exists()]  # fmt: skip
            if missing:
                run([*pip, "download", "-q", "--no-deps", "-d", str(folder), *target_args(python_version), *missing])
        old = {
            "key": key,
            "python_version": python_version,
            "platform": "x86_64 Linux (manylinux, glibc >= 2.17)",
            "reference_image": reference_image(python_version),
            "image": sorted(f"{items[n]['metadata']['name']}=={items[n]['metadata']['version']}" for n in image),
            "core": sorted(file_name(items[n]) for n in core),
            "optional": sorted("optional/" + file_name(items[n]) for n in optional),
            "left_out": LEFT_OUT,
        }
    project = next(dest.glob("yue_train-*.whl")).name
    old["core"] = sorted({*(f for f in old["core"] if not f.startswith("yue_train-")), project})
    core_mib = mib(dest / f for f in old["core"])
    old["core_mib"] = round(core_mib, 2)
    old["optional_mib"] = round(mib(dest / f for f in old["optional"]), 2)
    old["checkout_mib"] = round(checkout_mib(), 2)
    old["core_with_checkout_mib"] = round(core_mib + old["checkout_mib"], 2)
    manifest_path.write_text(json.dumps(old, indent=1) + "\n")
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--python-version", default="3.12", help="target CPython X.Y (default 3.12)")
    parser.add_argument("--build-python", default=shutil.which("python3") or sys.executable,
                        help="interpreter with torch and setuptools, which builds the project and deepspeed")  # fmt: skip
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        print(f"wheelhouse: --python-version {args.python_version} is not X.Y (e.g. 3.12)", file=sys.stderr)
        return 2
    manifest = build(args.dest, args.python_version, args.build_python)
    print(f"core: {len(manifest['core'])} wheels, {manifest['core_mib']:.1f} MiB "
          f"(+ checkout {manifest['checkout_mib']:.1f} MiB = {manifest['core_with_checkout_mib']:.1f} MiB, "
          f"limit {LIMIT_MIB:.0f}); optional: {len(manifest['optional'])} wheels, {manifest['optional_mib']:.1f} MiB")  # fmt: skip
    for name, why in LEFT_OUT.items():
        print(f"left out: {name} ({why})")
    if manifest["core_with_checkout_mib"] > LIMIT_MIB:
        print(f"wheelhouse: the core set is {manifest['core_with_checkout_mib']:.1f} MiB with the checkout, over the "
              f"{LIMIT_MIB:.0f} MiB limit; see {args.dest / 'MANIFEST.json'} for the largest wheels", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
