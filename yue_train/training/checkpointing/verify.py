"""Checkpoint manifests and verification: sizes and checksums, headers that parse, pickles without code.

``manifest.json`` (written before ``COMPLETE``) lists each file of a checkpoint with its size and its
xxh3-128 checksum (about 20 GB/s on one core, so checking a checkpoint costs a fraction of reading it).
:func:`verify_checkpoint` returns the first problem as a short phrase naming the file, or None. Its checks
read no tensor data except to checksum it: ``.pt`` files are scanned for the globals their pickle names
(:func:`yue_train.safe_pickle.refused_globals`, which parses and runs nothing), and any name outside plain
data (and DeepSpeed's records, :data:`.deepspeed.ALLOWLIST`) refuses the checkpoint before anything loads
it. DCP's ``dcp/.metadata`` (a pickle) is read through an allowlist, and every tensor range it lists must lie inside its ``.distcp`` file
(:func:`.dcp.storage_problem`). The learning rates and step counts of the optimizer groups and the
scheduler must be finite and in range (:mod:`yue_train.training.state_numbers`), so a damaged state file
makes resume fall back to the checkpoint before it like any other damage.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import xxhash
import yaml

from yue_train.format.bounded_json import JsonFileError, read_json_object
from yue_train.safe_pickle import refused_globals
from yue_train.training.checkpointing.dcp import optimizer_steps, storage_problem
from yue_train.training.checkpointing.deepspeed import ALLOWLIST
from yue_train.training.checkpointing.layout import (
    DCP_DIR,
    FORMAT_VERSION,
    MANIFEST,
    MARKER,
    OPTIMIZER_GROUPS,
    SCHEDULER,
    TRAINER_STATE,
)
from yue_train.training.checkpointing.state_files import CheckpointFileError, load_plain, rng_state, set_rng_state
from yue_train.training.state_numbers import (
    param_groups_problem,
    scheduler_state_problem,
    step_counts_problem,
    trainer_state_problem,
)

ALGORITHM = "xxh3_128"
_CHUNK = 16 * 2**20


def checksum(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path, exclude: tuple[str, ...]) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name not in exclude)


def write_manifest(folder: Path, exclude: tuple[str, ...]) -> None:
    """``folder/manifest.json``: size and checksum of every file under ``folder`` but ``exclude``d names."""
    names = _files(folder, exclude)
    with ThreadPoolExecutor(max_workers=4) as pool:
        sums = list(pool.map(lambda n: checksum(folder / n), names))
    files = {n: {"size": (folder / n).stat().st_size, ALGORITHM: s} for n, s in zip(names, sums, strict=True)}
    (folder / MANIFEST).write_text(json.dumps({"version": 1, "files": files}, indent=1) + "\n")


def _parse_problem(path: Path, rel: str) -> str | None:
    """A file that does not parse as what its name says, or a pickle that names code."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                f.keys()
        elif path.suffix in (".pt", ".bin", ".pth", ".pkl"):
            bad = refused_globals(path, ALLOWLIST)
            if bad:
                return f"{rel} would run code on load (it names {', '.join(bad[:3])}); refused"
    except Exception as e:  # noqa: BLE001 (any parse failure: the file is damaged)
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        return f"{rel} is damaged ({first})"
    return None


def verify_checkpoint(folder: Path, step: int | None = None) -> str | None:
    """The first problem of checkpoint ``folder`` as a phrase naming the file, or None when it verifies."""
    folder = Path(folder)
    marker = folder / MARKER
    if not marker.is_file():
        return "no COMPLETE marker: an interrupted save"
    try:
        int(marker.read_text().strip())
    except (ValueError, UnicodeDecodeError):
        return "COMPLETE is damaged"
    link = next((p for p in folder.rglob("*") if p.is_symlink()), None)
    if link is not None:  # a save writes none: reading through one would read outside the checkpoint
        return f"{link.relative_to(folder).as_posix()} is a symlink (to {os.readlink(link)}); refused"
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"{MANIFEST} is missing"
    try:
        listed = read_json_object(manifest)["files"]
        entries = {str(k): (int(v["size"]), str(v[ALGORITHM])) for k, v in listed.items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, OverflowError):
        return f"{MANIFEST} is damaged"
    present = set(_files(folder, (MARKER, MANIFEST)))
    for rel, (size, _) in entries.items():
        path = folder / rel
        if rel not in present:
            return f"{rel} is missing"
        if path.stat().st_size != size:
            return f"{rel} has {path.stat().st_size} bytes, the manifest says {size} (truncated or damaged)"
    extra = sorted(present - set(entries))
    if extra:
        return f"{extra[0]} is not in the manifest (added after the save)"
    with ThreadPoolExecutor(max_workers=4) as pool:
        sums = dict(zip(entries, pool.map(lambda r: checksum(folder / r), entries), strict=True))
    for rel, (_, digest) in entries.items():
        if sums[rel] != digest:
            return f"{rel} does not match its checksum (damaged)"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = _parse_problem(path, path.relative_to(folder).as_posix())
        if problem:
            return problem
    if (folder / DCP_DIR).is_dir():
        problem = storage_problem(folder / DCP_DIR, DCP_DIR)
        if problem:
            return problem
    try:
        state = read_json_object(folder / TRAINER_STATE)
    except JsonFileError:
        return f"{TRAINER_STATE} is damaged"
    problem = trainer_state_problem(state)
    if problem:
        return f"{TRAINER_STATE} is damaged ({problem})"
    saved, version = state["step"], state.get("format_version")
    if version != FORMAT_VERSION:
        return f"{TRAINER_STATE} has format_version {version}; this yue-train reads version {FORMAT_VERSION}"
    if step is not None and saved != step:
        return f"{TRAINER_STATE} says step {saved}, the folder step {step}"
    return _saved_numbers_problem(folder, saved)


def _saved_numbers_problem(folder: Path, step: int) -> str | None:
    """The learning rates and step counts of the DCP format's ``optimizer_groups.pt``, ``scheduler.pt`` and
    per-parameter optimizer steps, checked before a resume loads them: a NaN rate would train on and save
    NaN weights."""
    checks = {
        OPTIMIZER_GROUPS: lambda value: param_groups_problem(value, "saved optimizer"),
        SCHEDULER: lambda value: scheduler_state_problem(value, step),
    }
    for name, check in checks.items():
        if not (folder / name).is_file():
            continue
        try:
            problem = check(load_plain(folder / name))
        except CheckpointFileError as e:
            problem = str(e).split(": ", 1)[-1][:160]
        if problem:
            return f"{name} is damaged ({problem})"
    for path in sorted(folder.glob("rng_rank*.pt")):
        problem = _rng_problem(path)
        if problem:
            return f"{path.name} is damaged ({problem})"
    if (folder / DCP_DIR).is_dir():
        try:
            problem = step_counts_problem(optimizer_steps(folder / DCP_DIR), step)
        except CheckpointFileError as e:
            problem = str(e).split(": ", 1)[-1][:160]
        if problem:
            return f"{DCP_DIR} optimizer state is damaged ({problem})"
    return None


def _rng_problem(path: Path) -> str | None:
    """Why the RNG states in ``path`` cannot be set, found by setting them (this process's own states are put
    back after): a resume would fail on them after loading everything else."""
    mine = rng_state()
    try:
        set_rng_state(load_plain(path))
    except CheckpointFileError as e:
        return str(e).split(": ", 1)[-1][:160]
    except Exception as e:  # noqa: BLE001 (any state the generators refuse)
        return f"{type(e).__name__}: {str(e).strip()[:120]}"
    finally:
        set_rng_state(mine)
    return None


def read_trainer_state(folder: Path) -> dict:
    """``trainer_state.json`` of a checkpoint that verified."""
    return json.loads((Path(folder) / TRAINER_STATE).read_text())
