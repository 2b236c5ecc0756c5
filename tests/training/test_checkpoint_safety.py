"""Checkpoints handed over or damaged: nothing in them runs, damage is found, resume falls back.

One real run (``trained`` in conftest.py: tiny random model, checkpoints at steps 2 and 4) is copied per test; a test plants a
pickle payload, flips bytes, truncates or deletes a file of ``step-4`` and resumes with the real trainer.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.training.helpers import compose, random_run_overrides
from yue_train.training.checkpointing.layout import CHECKPOINTS, MANIFEST, MARKER, TRAINER_STATE
from yue_train.training.checkpointing.publish import pick_checkpoint
from yue_train.training.checkpointing.run_folder import RunFolderError
from yue_train.training.checkpointing.state_files import CheckpointFileError, load_plain
from yue_train.training.checkpointing.verify import ALGORITHM, checksum, write_manifest
from yue_train.training.trainer import run_training

# Every file of a full fine-tuning checkpoint: a new file must be added here (and so get a payload test).
CHECKPOINT_FILES = sorted([
    "COMPLETE", "config.yaml", "data.pt", "dcp/.metadata", "dcp/__0_0.distcp", MANIFEST, "model/config.json",
    "model/generation_config.json", "model/model.safetensors", "model_config/config.json",
    "model_config/generation_config.json", "optimizer_groups.pt", "rng_rank0.pt", "scheduler.pt",
    TRAINER_STATE, "yue_provenance.json",
])  # fmt: skip


def _overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return random_run_overrides(shards, run_dir, *extra, max_steps=4, save_every=2)


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _plant(ckpt: Path, rel: str, marker: Path) -> None:
    """Replace ``rel`` with a pickle that runs code; keep the manifest consistent (a deliberate attacker)."""
    path = ckpt / rel
    if path.suffix == ".pt":
        torch.save({"state": Payload(marker)}, path)  # a valid torch zip whose data.pkl names os.system
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
    manifest = ckpt / MANIFEST
    if rel not in (MANIFEST, MARKER):
        listed = json.loads(manifest.read_text())
        listed["files"][rel] = {"size": path.stat().st_size, ALGORITHM: checksum(path)}
        manifest.write_text(json.dumps(listed))


def test_the_payload_list_is_every_file_of_a_checkpoint(trained):
    ckpt = trained / CHECKPOINTS / "step-4"
    assert sorted(p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()) == CHECKPOINT_FILES


@pytest.mark.parametrize("rel", CHECKPOINT_FILES)
def test_a_planted_pickle_in_any_checkpoint_file_runs_nothing(random_shards, run, tmp_path, rel):
    marker = tmp_path / "payload-ran"
    ckpt = run / CHECKPOINTS / "step-4"
    _plant(ckpt, rel, marker)
    with pytest.raises((RunFolderError, CheckpointFileError)) as e:
        run_training(compose(*_overrides(random_shards, run, f"trainer.resume={ckpt}", "trainer.max_steps=6")))
    assert not marker.exists()
    message = str(e.value)
    assert rel in message and "\n" not in message, message


def test_resume_auto_skips_a_planted_checkpoint_and_says_which_file(random_shards, run, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    _plant(run / CHECKPOINTS / "step-4", "data.pt", marker)
    summary = run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=6")))
    assert not marker.exists() and summary["step"] == 6
    lines = [x for x in capsys.readouterr().err.splitlines() if "skipped" in x]
    assert lines == [
        "yue-train: resuming from step-2; skipped step-4 (data.pt would run code on load (it names posix.system); "
        "refused)"
    ]


def test_the_loader_itself_refuses_a_payload_naming_the_file(tmp_path):
    marker, path = tmp_path / "payload-ran", tmp_path / "rng_rank0.pt"
    torch.save([Payload(marker)], path)
    with pytest.raises(CheckpointFileError, match="rng_rank0.pt: refused to load"):
        load_plain(path)
    assert not marker.exists()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = bytes(b ^ 0x5A for b in data[mid : mid + 4096])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "bit rot in model.safetensors": ("model/model.safetensors", _flip, "does not match its checksum"),
    "truncated model.safetensors": ("model/model.safetensors", _truncate, "(truncated or damaged)"),
    "missing DCP shard": ("dcp/__0_0.distcp", Path.unlink, "is missing"),
    "truncated DCP shard": ("dcp/__0_0.distcp", _truncate, "(truncated or damaged)"),
    "bit rot in DCP metadata": ("dcp/.metadata", _flip, "does not match its checksum"),
    "missing data.pt": ("data.pt", Path.unlink, "is missing"),
    "truncated data.pt": ("data.pt", _truncate, "(truncated or damaged)"),
    "bad trainer_state.json": (TRAINER_STATE, lambda p: p.write_text('{"step": '), "(truncated or damaged)"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_resume_falls_back_from_a_damaged_checkpoint_and_says_why(random_shards, run, capsys, case):
    rel, damage, why = DAMAGE[case]
    damage(run / CHECKPOINTS / "step-4" / rel)
    summary = run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=5")))
    assert summary["step"] == 5 and summary["status"] == "finished"
    skipped = [x for x in capsys.readouterr().err.splitlines() if "skipped" in x]
    assert len(skipped) == 1 and skipped[0].startswith(f"yue-train: resuming from step-2; skipped step-4 ({rel} ")
    assert why in skipped[0]


def test_a_checkpoint_without_its_manifest_is_not_trusted(run):
    (run / CHECKPOINTS / "step-4" / MANIFEST).unlink()
    assert pick_checkpoint(run) == (run / CHECKPOINTS / "step-2", ["step-4 (manifest.json is missing)"])


def test_an_unknown_format_version_is_refused_in_one_line(run):
    ckpt = run / CHECKPOINTS / "step-4"
    state = json.loads((ckpt / TRAINER_STATE).read_text())
    (ckpt / TRAINER_STATE).write_text(json.dumps({**state, "format_version": 99}))
    (ckpt / MANIFEST).unlink()
    write_manifest(ckpt, exclude=(MARKER, MANIFEST))  # a consistent checkpoint of another layout version
    picked, skipped = pick_checkpoint(run)
    assert picked == run / CHECKPOINTS / "step-2"
    assert skipped == [f"step-4 ({TRAINER_STATE} has format_version 99; this yue-train reads version 1)"]


def test_no_checkpoint_verifies_is_one_line_and_starts_nothing(random_shards, run):
    for step in (2, 4):
        _truncate(run / CHECKPOINTS / f"step-{step}" / "data.pt")
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(RunFolderError) as e:
        run_training(compose(*_overrides(random_shards, run, "trainer.max_steps=6")))
    message = str(e.value)
    assert "no checkpoint verifies" in message and "step-4 (data.pt" in message and "step-2 (data.pt" in message
    assert "trainer.resume=none" in message and "\n" not in message
    assert (run / "metrics.jsonl").read_bytes() == before
