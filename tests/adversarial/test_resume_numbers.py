"""Numbers read back from a checkpoint's state files, damaged by a deliberate attacker (the manifest rewritten
to match): learning rates, the scheduler's step count and the optimizer's per-parameter steps. Each makes
resume fall back to the checkpoint before it, with one line naming the file and the value; with none left,
resume is refused in one line. The run is the training tests' shared ``trained`` run (checkpoints at steps
2 and 4), copied per test."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.training.conftest import random_shards, run, trained  # noqa: F401 (fixtures)
from tests.training.helpers import compose, random_run_overrides
from yue_train.training.checkpointing.layout import CHECKPOINTS, DCP_DIR, MANIFEST, OPTIMIZER_GROUPS, SCHEDULER
from yue_train.training.checkpointing.publish import pick_checkpoint
from yue_train.training.checkpointing.run_folder import RunFolderError
from yue_train.training.checkpointing.state_files import load_plain, save_plain
from yue_train.training.checkpointing.verify import ALGORITHM, checksum


def _relist(ckpt: Path, rel: str) -> None:
    """The manifest entry of ``rel`` made to match its new bytes."""
    listed = json.loads((ckpt / MANIFEST).read_text())
    for name in [rel] if rel in listed["files"] else [n for n in listed["files"] if n.startswith(f"{rel}/")]:
        listed["files"][name] = {"size": (ckpt / name).stat().st_size, ALGORITHM: checksum(ckpt / name)}
    (ckpt / MANIFEST).write_text(json.dumps(listed))


def _edit_plain(ckpt: Path, rel: str, change: Callable[[object], None]) -> None:
    value = load_plain(ckpt / rel)
    change(value)
    save_plain(value, ckpt / rel)
    _relist(ckpt, rel)


def _group(key: str, value: object) -> Callable[[object], None]:
    return lambda groups: groups[0].__setitem__(key, value)


def _sched(key: str, value: object) -> Callable[[object], None]:
    return lambda state: state.__setitem__(key, value)


PLAIN_CASES = {
    "lr-nan": (OPTIMIZER_GROUPS, _group("lr", math.nan), "saved optimizer param group 0 has lr=nan"),
    "lr-inf": (OPTIMIZER_GROUPS, _group("lr", math.inf), "has lr=inf"),
    "lr-negative": (OPTIMIZER_GROUPS, _group("lr", -0.5), "negative lr=-0.5"),
    "initial-lr-nan": (OPTIMIZER_GROUPS, _group("initial_lr", math.nan), "initial_lr=nan"),
    "betas-inf": (OPTIMIZER_GROUPS, _group("betas", (0.9, math.inf)), "betas=(0.9, inf)"),
    "eps-string": (OPTIMIZER_GROUPS, _group("eps", "x"), "eps='x'"),
    "groups-not-list": (OPTIMIZER_GROUPS, lambda g: g.__setitem__(0, 5), "not a list of objects"),
    "base-lr-nan": (SCHEDULER, _sched("base_lrs", [math.nan, 1e-3]), "scheduler base_lrs[0]=nan"),
    "last-lr-inf": (SCHEDULER, _sched("_last_lr", [1e-3, math.inf]), "scheduler _last_lr[1]=inf"),
    "last-epoch-negative": (SCHEDULER, _sched("last_epoch", -3), "last_epoch=-3 is not a step count"),
    "last-epoch-huge": (SCHEDULER, _sched("last_epoch", 10**12), "last_epoch=1000000000000"),
    "last-epoch-float": (SCHEDULER, _sched("last_epoch", 2.5), "last_epoch=2.5"),
    "rng-python-string": ("rng_rank0.pt", lambda r: r.__setitem__("python", "x"), "rng_rank0.pt is damaged ("),
    "rng-numpy-missing": ("rng_rank0.pt", lambda r: r.__setitem__("numpy", {}), "rng_rank0.pt is damaged (KeyError"),
    "rng-torch-short": (
        "rng_rank0.pt",
        lambda r: r.__setitem__("torch", torch.zeros(3, dtype=torch.uint8)),
        "rng_rank0.pt is damaged (",
    ),
    "rng-torch-float": (
        "rng_rank0.pt",
        lambda r: r.__setitem__("torch", torch.zeros(5056)),
        "must be a torch.ByteTensor",
    ),
}


@pytest.mark.parametrize("name", sorted(PLAIN_CASES))
def test_a_damaged_state_number_makes_resume_fall_back(name, run):  # noqa: F811
    rel, change, expected = PLAIN_CASES[name]
    _edit_plain(run / CHECKPOINTS / "step-4", rel, change)
    before = torch.get_rng_state()
    chosen, skipped = pick_checkpoint(run)
    assert chosen == run / CHECKPOINTS / "step-2", skipped
    assert len(skipped) == 1 and skipped[0].startswith(f"step-4 ({rel} is damaged (") and expected in skipped[0]
    assert torch.equal(torch.get_rng_state(), before)  # checking the RNG states put this process's back


def _set_dcp_steps(ckpt: Path, value: float) -> None:
    """Rewrite ``ckpt/dcp`` with every ``optim.*.step`` set to ``value`` (all other tensors as saved)."""
    import torch.distributed.checkpoint as dcp

    from yue_train.training.checkpointing.dcp import SafeReader, read_metadata

    folder = ckpt / DCP_DIR
    meta = read_metadata(folder)
    state = {k: torch.empty(v.size, dtype=v.properties.dtype) for k, v in meta.state_dict_metadata.items()}
    dcp.load(state, storage_reader=SafeReader(str(folder)), no_dist=True)
    for key in state:
        if key.endswith(".step"):
            state[key] = torch.tensor(value, dtype=state[key].dtype)
    for p in folder.iterdir():
        p.unlink()
    dcp.save(state, storage_writer=dcp.FileSystemWriter(str(folder), single_file_per_rank=True), no_dist=True)
    _relist(ckpt, DCP_DIR)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e9])
def test_a_damaged_optimizer_step_makes_resume_fall_back(value, run):  # noqa: F811
    _set_dcp_steps(run / CHECKPOINTS / "step-4", value)
    chosen, skipped = pick_checkpoint(run)
    assert chosen == run / CHECKPOINTS / "step-2", skipped
    assert len(skipped) == 1 and skipped[0].startswith("step-4 (dcp optimizer state is damaged (optim.")
    assert f"step={value!r} is not a step count within the checkpoint's step 4" in skipped[0]


def test_resume_trains_on_from_the_previous_checkpoint_and_says_why(random_shards, run, capsys):  # noqa: F811
    from yue_train.training.trainer import run_training

    _edit_plain(run / CHECKPOINTS / "step-4", OPTIMIZER_GROUPS, _group("lr", math.nan))
    summary = run_training(compose(*random_run_overrides(random_shards, run, max_steps=5, save_every=2)))
    assert summary["step"] == 5 and summary["status"] == "finished"
    skipped = [x for x in capsys.readouterr().err.splitlines() if "skipped" in x]
    assert skipped == [
        "yue-train: resuming from step-2; skipped step-4 (optimizer_groups.pt is damaged (saved optimizer param "
        "group 0 has lr=nan))"
    ]
    weights = load_plain(run / CHECKPOINTS / "step-5" / OPTIMIZER_GROUPS)
    assert all(math.isfinite(g["lr"]) for g in weights)


def test_resume_is_refused_in_one_line_when_no_checkpoint_is_left(random_shards, run):  # noqa: F811
    from yue_train.training.trainer import run_training

    _edit_plain(run / CHECKPOINTS / "step-4", OPTIMIZER_GROUPS, _group("lr", math.nan))
    _edit_plain(run / CHECKPOINTS / "step-2", SCHEDULER, _sched("last_epoch", -1))
    with pytest.raises(RunFolderError) as e:
        run_training(compose(*random_run_overrides(random_shards, run, max_steps=6, save_every=2)))
    message = str(e.value)
    assert "\n" not in message and "no checkpoint verifies" in message and "trainer.resume=none" in message
    assert "step-4 (optimizer_groups.pt is damaged (saved optimizer param group 0 has lr=nan))" in message
    assert "step-2 (scheduler.pt is damaged (scheduler last_epoch=-1 is not a step count" in message


def test_an_explicit_resume_of_a_damaged_checkpoint_is_one_line(random_shards, run):  # noqa: F811
    from yue_train.training.trainer import run_training

    ckpt = run / CHECKPOINTS / "step-4"
    _edit_plain(ckpt, SCHEDULER, _sched("base_lrs", [math.inf, math.inf]))
    overrides = random_run_overrides(random_shards, run, f"trainer.resume={ckpt}", max_steps=6, save_every=2)
    with pytest.raises(RunFolderError, match=r"scheduler.pt is damaged \(scheduler base_lrs\[0\]=inf\)") as e:
        run_training(compose(*overrides))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("rel", ["rng_rank0.pt", "dcp/__0_0.distcp", "model_config"])
def test_a_symlink_inside_a_checkpoint_makes_resume_fall_back(rel, run, tmp_path):  # noqa: F811
    """A save writes no links: one leading out of the checkpoint (here to a copy of the same bytes, the
    manifest still true) is refused before anything is read through it."""
    import shutil

    ckpt = run / CHECKPOINTS / "step-4"
    outside = tmp_path / "outside" / Path(rel).name
    outside.parent.mkdir()
    shutil.move(ckpt / rel, outside)
    (ckpt / rel).symlink_to(outside)
    chosen, skipped = pick_checkpoint(run)
    assert chosen == run / CHECKPOINTS / "step-2"
    assert skipped == [f"step-4 ({rel} is a symlink (to {outside}); refused)"]
