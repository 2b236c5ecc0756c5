"""Checkpoint manifests and verification: sizes and checksums, headers that parse, pickles without code.

``manifest.json`` (written before ``COMPLETE``) lists each file of a checkpoint with its size and its
xxh3-128 checksum (about 20 GB/s on one core, so checking a checkpoint costs a fraction of reading it).
:func:`verify_checkpoint` returns the first problem as a short phrase naming the file, or None. Its checks
read no tensor data except to checksum it: ``.pt`` files are scanned for the globals their pickle names
(``torch.serialization.get_unsafe_globals_in_checkpoint``, which parses and runs nothing), and any name
outside plain data refuses the checkpoint before anything loads it. DCP's ``dcp/.metadata`` (a pickle) is
read through an allowlist, and every tensor range it lists must lie inside its ``.distcp`` file
(:func:`.dcp_state.storage_problem`).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import xxhash
import yaml

from yue_train.training.dcp_state import DCP_DIR, storage_problem

MANIFEST = "manifest.json"
ALGORITHM = "xxh3_128"
_CHUNK = 16 * 2**20
# Globals a pickle may name beyond torch's weights_only allowlist. numpy arrays: checkpoints written
# before their state was made plain. DeepSpeed's optimizer files: its loss scaler, stage enum and the
# fragment address dataclass (DeepSpeed loads its own files; these names are checked before it does).
ALLOWED_GLOBALS = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
        "deepspeed.runtime.zero.config.ZeroStageEnum",
        "deepspeed.utils.tensor_fragment.fragment_address",
    }
)


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


def unsafe_globals(path: Path) -> list[str]:
    """The callables ``path``'s pickle names beyond plain data (read without running anything)."""
    found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    return [g for g in found if g not in ALLOWED_GLOBALS and not _numpy_dtype(g)]


def _numpy_dtype(name: str) -> bool:
    return name.startswith("numpy.dtypes.") and name.endswith("DType") and "Object" not in name


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
            bad = unsafe_globals(path)
            if bad:
                return f"{rel} would run code on load (it names {', '.join(bad[:3])}); refused"
    except Exception as e:  # noqa: BLE001 (any parse failure: the file is damaged)
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        return f"{rel} is damaged ({first})"
    return None


def verify_checkpoint(folder: Path, step: int | None = None) -> str | None:
    """The first problem of checkpoint ``folder`` as a phrase naming the file, or None when it verifies."""
    folder = Path(folder)
    marker = folder / "COMPLETE"
    if not marker.is_file():
        return "no COMPLETE marker: an interrupted save"
    try:
        int(marker.read_text().strip())
    except (ValueError, UnicodeDecodeError):
        return "COMPLETE is damaged"
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            listed = json.loads(manifest.read_text())["files"]
            entries = {str(k): (int(v["size"]), str(v[ALGORITHM])) for k, v in listed.items()}
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            return f"{MANIFEST} is damaged"
        present = set(_files(folder, ("COMPLETE", MANIFEST)))
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
    elif not (folder / "trainer_state.json").is_file():
        return "trainer_state.json is missing"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = _parse_problem(path, path.relative_to(folder).as_posix())
        if problem:
            return problem
    if (folder / DCP_DIR).is_dir():
        problem = storage_problem(folder / DCP_DIR, DCP_DIR)
        if problem:
            return problem
    try:
        saved = int(json.loads((folder / "trainer_state.json").read_text())["step"])
    except (ValueError, KeyError, TypeError, OSError):
        return "trainer_state.json is damaged"
    if step is not None and saved != step:
        return f"trainer_state.json says step {saved}, the folder step {step}"
    return None
