"""Model and optimizer state through ``torch.distributed.checkpoint`` (DCP): each process writes and reads
only its own shard, and a checkpoint written by N processes loads under M (files: :mod:`.layout`).

- ``dcp/`` holds the *tensors* only: ``model.<name>`` (the trainable parameters for LoRA, the whole model
  otherwise) and ``optim.<name>.<exp_avg|exp_avg_sq|step>``, from ``torch.distributed.checkpoint.state_dict``
  without ``full_state_dict``: DTensor shards under FSDP2, replicas (written once) under DDP and ``single``.
  Loading plans every read against the saved chunks, which is what reshards.
- ``optimizer_groups.pt``: the optimizer's ``param_groups``, plain data (:mod:`.state_files`). DCP would store
  these non-tensor values as pickled bytes that its planner loads with ``torch.load(weights_only=False)``;
  keeping them out of ``dcp/`` means nothing in there can name code.

DCP's ``.metadata`` is a plain pickle (``FileSystemReader.read_metadata`` calls ``pickle.load``); it is read
through :data:`METADATA_ALLOWLIST` instead (:class:`SafeReader`, also used by :mod:`.verify`), so a planted
``.metadata`` is refused, naming the file, before anything it names can run.

Async save (``trainer.async_save``): the tensors are staged to CPU memory and written by a background thread
(``dcp.async_save``) on a separate gloo group; the caller publishes the checkpoint once the future is done.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint import filesystem as dcp_fs
from torch.distributed.checkpoint import metadata as dcp_md
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from transformers import PreTrainedModel

from yue_train.safe_pickle import Allowlist, OversizedPickleError, UnsafeCheckpointError, restricted_load
from yue_train.training import ranks
from yue_train.training.checkpointing.hf_export import ExportError, saved_module
from yue_train.training.checkpointing.layout import DCP_DIR, MODEL_CONFIG_DIR, OPTIMIZER_GROUPS
from yue_train.training.checkpointing.layout import DCP_METADATA as METADATA
from yue_train.training.checkpointing.state_files import CheckpointFileError, load_plain, refused, save_plain

# DCP warns on every call without a process group that it assumes one process: we say so (no_dist) already.
warnings.filterwarnings("ignore", message=".*torch.distributed is disabled, unavailable or uninitialized.*")


# ------------------------------------------------------------------------------- safe metadata reading
# DCP's metadata records, and the path type a save given a Path records as its checkpoint id.
_METADATA_NAMES = [f"{dcp_md.__name__}.{n}" for n in (
    "Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "TensorProperties", "StorageMeta", "MetadataIndex",
    "_MEM_FORMAT_ENCODING",
    "BytesStorageMetadata",  # refused after loading (see read_metadata)
)]  # fmt: skip
METADATA_ALLOWLIST = Allowlist().with_names([*_METADATA_NAMES, f"{dcp_fs.__name__}._StorageInfo", "pathlib.PosixPath"])


def read_metadata(folder: Path) -> dcp_md.Metadata:
    """``folder/.metadata`` through the allowlist; :class:`CheckpointFileError` naming the file otherwise.

    Also refused: a metadata entry stored as pickled bytes (DCP would load it with ``weights_only=False``;
    we never write one) and a storage entry with transforms (we write none)."""
    path = Path(folder) / METADATA
    if not path.is_file():
        raise CheckpointFileError(f"{path}: missing")
    try:
        meta = restricted_load(path.read_bytes(), METADATA_ALLOWLIST, str(path))
    except UnsafeCheckpointError as e:
        raise refused(path, [e.qualname]) from None
    except OversizedPickleError as e:
        raise CheckpointFileError(str(e)) from None
    except Exception as e:  # noqa: BLE001 (any damage: one line naming the file)
        raise CheckpointFileError(f"{path}: unreadable ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(meta, dcp_md.Metadata) or not isinstance(meta.state_dict_metadata, dict):
        raise CheckpointFileError(f"{path}: not DCP metadata")
    pickled = [k for k, v in meta.state_dict_metadata.items() if isinstance(v, dcp_md.BytesStorageMetadata)]
    if pickled:
        raise CheckpointFileError(f"{path}: entry {pickled[0]!r} is pickled bytes (would load with code); refused")
    if not isinstance(meta.storage_data, dict) or any(
        not isinstance(v, dcp_fs._StorageInfo) or v.transform_descriptors for v in meta.storage_data.values()
    ):
        raise CheckpointFileError(f"{path}: storage entries are not plain file ranges; refused")
    return meta


MAX_METADATA_ENTRIES = 1_000_000


def _size_problem(meta: dcp_md.Metadata, data_bytes: int) -> str | None:
    """Entry counts and tensor sizes the ``.distcp`` files (``data_bytes`` in all) can hold: a few bytes of
    metadata may claim tensors of any size, and loading would allocate them."""
    entries = meta.state_dict_metadata
    if len(entries) > MAX_METADATA_ENTRIES or len(meta.storage_data) > MAX_METADATA_ENTRIES:
        return f"lists more than {MAX_METADATA_ENTRIES:,} entries"
    for key, value in entries.items():
        if not isinstance(value, dcp_md.TensorStorageMetadata):
            continue
        try:
            numel = math.prod(int(d) for d in value.size)
            itemsize = torch.empty((), dtype=value.properties.dtype).element_size()
            chunks = [(list(c.offsets), list(c.sizes)) for c in value.chunks]
        except (TypeError, ValueError, AttributeError, RuntimeError):
            return f"describes {str(key)[:80]!r} with sizes that are not numbers"
        if numel < 0 or numel * itemsize > data_bytes or len(chunks) > MAX_METADATA_ENTRIES:
            return f"claims {str(key)[:80]!r} holds {numel:,} entries, more than its files hold ({data_bytes:,} bytes)"
        for offsets, sizes in chunks:
            dims = list(value.size)
            if (
                len(offsets) != len(dims)
                or len(sizes) != len(dims)
                or any(
                    int(o) < 0 or int(s) < 0 or int(o) + int(s) > int(d)
                    for o, s, d in zip(offsets, sizes, dims, strict=True)
                )
            ):
                return f"has a chunk of {str(key)[:80]!r} outside the tensor"
    return None


def storage_problem(folder: Path, rel: str) -> str | None:
    """The first problem of DCP folder ``folder`` (``rel``: its name inside the checkpoint) as a phrase, or
    None: metadata that would run code or does not parse, or a tensor range beyond its ``.distcp`` file."""
    try:
        meta = read_metadata(folder)
    except CheckpointFileError as e:
        return f"{rel}/{METADATA}: {str(e).split(': ', 1)[1]}"
    sizes: dict[str, int] = {}
    for info in meta.storage_data.values():
        name = str(info.relative_path)
        if "/" in name or name.startswith("."):
            return f"{rel}/{METADATA} names a file outside its folder ({name}); refused"
        if name not in sizes:
            p = Path(folder) / name
            sizes[name] = p.stat().st_size if p.is_file() else -1
        if sizes[name] < 0:
            return f"{rel}/{name} is missing"
        if int(info.offset) + int(info.length) > sizes[name]:
            return f"{rel}/{name} is shorter than {rel}/{METADATA} says (truncated or damaged)"
    problem = _size_problem(meta, sum(p.stat().st_size for p in Path(folder).glob("*.distcp") if p.is_file()))
    if problem:  # after the per-file checks, which name a damaged .distcp file itself
        return f"{rel}/{METADATA} {problem}; refused"
    return None


class SafeReader(FileSystemReader):
    """DCP's file reader with :func:`read_metadata` in place of its ``pickle.load``."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> dcp_md.Metadata:
        meta = read_metadata(Path(self.path))
        if getattr(meta, "storage_meta", None) is None:
            meta.storage_meta = dcp_md.StorageMeta()
        meta.storage_meta.load_id = self.load_id
        return meta


# ------------------------------------------------------------------------------------ state dicts
def _options(trainable_only: bool) -> StateDictOptions:
    # Sharded (no full_state_dict): DTensor shards under FSDP2, the local replica otherwise.
    return StateDictOptions(ignore_frozen_params=trainable_only, strict=not trainable_only)


def _check_tensors(tree: Any, where: str) -> None:
    """Every leaf a tensor: anything else would go into ``.distcp`` as a pickle (see the module docstring)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_tensors(v, f"{where}.{k}")
    elif not isinstance(tree, torch.Tensor):
        raise TypeError(f"{where} is a {type(tree).__name__}, not a tensor: it cannot go into the DCP files")


def _gather_state(lm: nn.Module, optimizer: torch.optim.Optimizer, trainable_only: bool) -> tuple[dict, list]:
    msd, osd = get_state_dict(lm, optimizer, options=_options(trainable_only))
    tensors = {"model": msd, "optim": osd["state"]}
    _check_tensors(tensors, "state")
    return tensors, osd["param_groups"]


def save(
    folder: Path,
    lm: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainable_only: bool,
    async_group: Any = None,
    fault: Callable[[], None] | None = None,
) -> Future | None:
    """Write ``folder/dcp`` (every process its shard) and ``folder/optimizer_groups.pt`` (main process).

    With ``async_group`` (a gloo process group, or ``"local"`` for a run without one): returns once the
    tensors are staged in CPU memory, with a future that completes when the files are written. ``fault``
    runs in the writer before the files (fault injection for tests)."""
    tensors, groups = _gather_state(lm, optimizer, trainable_only)
    if ranks.is_main():
        save_plain(groups, folder / OPTIMIZER_GROUPS)
    writer = _Writer(str(folder / DCP_DIR), fault)
    with unwrapped_errors():
        if async_group is None:
            dcp.save(tensors, storage_writer=writer, no_dist=not dist.is_initialized())
            return None
        group = None if async_group == "local" else async_group
        return dcp.async_save(tensors, storage_writer=writer, process_group=group, no_dist=not dist.is_initialized())


@contextlib.contextmanager
def unwrapped_errors() -> Iterator[None]:
    """DCP reports a failed write as a ``CheckpointException`` (a BaseException carrying each rank's error):
    raise this process's first underlying error instead, so callers see e.g. the ENOSPC of a full disk."""
    try:
        yield
    except CheckpointException as e:
        failures = list(e.failures.values())
        if failures and isinstance(failures[0][0], Exception):
            raise failures[0][0] from None
        raise RuntimeError(str(e).strip().splitlines()[-1]) from None


class _Writer(FileSystemWriter):
    """DCP's file writer; single file per process, optional fault pause before writing (tests)."""

    def __init__(self, path: str, fault: Callable[[], None] | None) -> None:
        super().__init__(path, single_file_per_rank=True, sync_files=True)
        self._fault = fault

    def write_data(self, plan: Any, planner: Any) -> Any:
        if self._fault is not None:
            self._fault()
        return super().write_data(plan, planner)


def load(folder: Path, lm: nn.Module, optimizer: torch.optim.Optimizer, trainable_only: bool) -> None:
    """Read this process's share of ``folder/dcp`` into the (wrapped) model and optimizer; any world size."""
    groups = load_plain(folder / OPTIMIZER_GROUPS)
    tensors, _ = _gather_state(lm, optimizer, trainable_only)
    _read(tensors, folder / DCP_DIR)
    set_state_dict(
        lm,
        optimizer,
        model_state_dict=tensors["model"],
        optim_state_dict={"state": tensors["optim"], "param_groups": groups},
        options=_options(trainable_only),
    )


def _read(state: dict[str, Any], path: Path, no_dist: bool = False) -> None:
    problem = storage_problem(path, path.name)  # as on resume: plain metadata, files inside ``path``, ranges in them
    if problem:
        raise CheckpointFileError(f"{path.parent}: {problem}")
    try:
        dcp.load(state, storage_reader=SafeReader(str(path)), no_dist=no_dist or not dist.is_initialized())
    except (Exception, CheckpointException) as e:  # DCP's per-rank report is long: one line naming the folder
        lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
        raise CheckpointFileError(f"{path}: unreadable ({lines[-1][:200] if lines else type(e).__name__})") from None


def optimizer_steps(folder: Path) -> dict[str, float]:
    """The per-parameter ``step`` counts (``optim.<name>.step`` scalars) of DCP folder ``folder``, read
    alone (none of the moments), by entry name: what verification checks before a resume loads them."""
    meta = read_metadata(folder)
    wanted = {
        k: torch.empty((), dtype=v.properties.dtype)
        for k, v in meta.state_dict_metadata.items()
        if k.startswith("optim.") and k.endswith(".step")
        and isinstance(v, dcp_md.TensorStorageMetadata) and len(v.size) == 0
    }  # fmt: skip
    if wanted:
        _read(wanted, Path(folder), no_dist=True)
    return {k: float(v) for k, v in wanted.items()}


def load_module_weights(folder: Path, module: nn.Module, require_all: bool = True) -> None:
    """The saved ``model.*`` tensors into a plain (unwrapped, unsharded) module, this process alone: the
    start of a new phase (``trainer.init_from``) or an export. ``require_all``: every entry of the module's
    state dict must be saved (a full-model checkpoint); otherwise only those saved (a LoRA checkpoint)."""
    problem = storage_problem(folder / DCP_DIR, DCP_DIR)  # files confined to the folder, ranges inside them
    if problem:
        raise CheckpointFileError(f"{folder}: {problem}")
    sd = module.state_dict()
    saved = {
        k.removeprefix("model.") for k in read_metadata(folder / DCP_DIR).state_dict_metadata if k.startswith("model.")
    }
    wanted = {k: v for k, v in sd.items() if k in saved}
    problem = sorted(saved - set(sd)) or (sorted(set(sd) - saved) if require_all else [])
    if problem or not wanted:
        what = problem[0] if problem else "any parameter"
        raise CheckpointFileError(f"{folder / DCP_DIR}: its weights do not fit this model ({what}); another model?")
    _read({"model": wanted}, folder / DCP_DIR, no_dist=True)
    module.load_state_dict(wanted, strict=False)


def saved_bytes(folder: Path) -> int:
    """Bytes of DCP data this process wrote into ``folder/dcp`` (its ``__R_*.distcp`` file)."""
    return sum(p.stat().st_size for p in (folder / DCP_DIR).glob(f"__{ranks.rank()}_*.distcp"))


# ---------------------------------------------------------------------------------------- export
def is_dcp_checkpoint(folder: Path) -> bool:
    return (Path(folder) / DCP_DIR / METADATA).is_file()


def dcp_model(checkpoint: Path, base: str | None, dtype: torch.dtype) -> PreTrainedModel | None:
    """``yue-train export``'s source for a checkpoint holding only the sharded state: the plain model read by
    this one process whatever number wrote it (LoRA merged into its base), or None when ``checkpoint`` holds
    no DCP state."""
    if not is_dcp_checkpoint(checkpoint):
        return None
    try:
        model, lora = saved_module(Path(checkpoint) / MODEL_CONFIG_DIR, base, dtype)
        load_module_weights(Path(checkpoint), model, require_all=not lora)
    except CheckpointFileError as e:
        raise ExportError(str(e)) from None
    return model.merge_and_unload() if lora else model
