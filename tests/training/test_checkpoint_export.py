"""Checkpoints that hold only the sharded training state (``dcp/``): ``yue-train export`` turns them into a
plain Hugging Face folder (full model, or LoRA merged into its base) with the trained weights, and a new
phase starts from them with ``trainer.init_from``. Readers of Hugging Face weights say what to run.

Two real runs (tiny random model; full and LoRA), checkpoints at steps 2 and 4: step-2 holds DCP state only,
step-4 (the end of the phase) Hugging Face weights too, written by the whole-model gather; those are the
reference the DCP export must equal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tests.conftest import built_once
from tests.training.helpers import compose, random_run_overrides
from yue_train.cli.train import main as train_cli
from yue_train.training.checkpointing.hf_export import ExportError, merged_model
from yue_train.training.checkpointing.layout import CHECKPOINTS, TRAINER_STATE
from yue_train.training.checkpointing.state_files import CheckpointFileError
from yue_train.training.trainer import run_training

LORA = ("lora=qkvo", "lora.r=4")


def _train(shards: Path, run: Path, *extra: str) -> Path:
    run_training(compose(*random_run_overrides(shards, run, *extra, max_steps=4, save_every=2)))
    return run / CHECKPOINTS


@pytest.fixture(scope="module")
def full_run(trained) -> Path:
    """The checkpoints of the shared trained run (conftest.py: 4 steps, saved at 2 and 4); only read here."""
    return trained / CHECKPOINTS


@pytest.fixture(scope="module")
def lora_run(random_shards, tmp_path_factory) -> Path:
    """The same run with LoRA adapters, trained once per session; only read here."""
    built = built_once(tmp_path_factory, "trained_lora", lambda folder: _train(random_shards, folder / "run", *LORA))
    return built / "run" / CHECKPOINTS


def _dcp_only(ckpt: Path, dest: Path) -> Path:
    """A copy of ``ckpt`` without its Hugging Face weights (as every checkpoint but the phase's last)."""
    shutil.copytree(ckpt, dest)
    for hf in ("model", "adapter"):
        shutil.rmtree(dest / hf, ignore_errors=True)
    return dest


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in model.state_dict().items()}


def test_only_the_last_checkpoint_of_a_phase_has_hugging_face_weights(full_run, lora_run):
    assert not (full_run / "step-2" / "model").exists() and (full_run / "step-4" / "model" / "config.json").exists()
    assert not (lora_run / "step-2" / "adapter").exists() and (lora_run / "step-4" / "adapter").is_dir()
    # LoRA: only the adapter's tensors (and their optimizer state) are in the sharded state
    lora_bytes = (lora_run / "step-2" / "dcp" / "__0_0.distcp").stat().st_size
    full_bytes = (full_run / "step-2" / "dcp" / "__0_0.distcp").stat().st_size
    assert lora_bytes < full_bytes / 4, (lora_bytes, full_bytes)


def test_export_of_a_full_dcp_checkpoint_has_the_trained_weights(full_run, tmp_path):
    ckpt = _dcp_only(full_run / "step-4", tmp_path / "ckpt")
    out = tmp_path / "export"
    assert train_cli(["export", str(ckpt), str(out), "--dtype", "float32"]) == 0
    exported = AutoModelForCausalLM.from_pretrained(out)
    trained = load_file(full_run / "step-4" / "model" / "model.safetensors")
    got = _weights(exported)
    assert trained and all(torch.equal(got[k], v) for k, v in trained.items())
    assert exported.config.use_cache is True and (out / "yue_provenance.json").is_file()


def test_export_of_a_lora_dcp_checkpoint_merges_the_trained_adapter(lora_run, tmp_path):
    ckpt = _dcp_only(lora_run / "step-4", tmp_path / "ckpt")
    out = tmp_path / "export"
    assert train_cli(["export", str(ckpt), str(out), "--dtype", "float32"]) == 0
    exported = _weights(AutoModelForCausalLM.from_pretrained(out))
    want = _weights(merged_model(lora_run / "step-4"))  # the PEFT adapter the gather wrote, merged
    assert exported.keys() == want.keys()
    assert all(torch.equal(exported[k], want[k]) for k in want)
    base = _weights(AutoModelForCausalLM.from_pretrained(lora_run.parent / "base_model"))
    assert any(not torch.equal(exported[k], base[k]) for k in base)  # the adapter did change the model


@pytest.mark.slow
def test_init_from_a_run_whose_latest_checkpoint_is_dcp_only(random_shards, full_run, tmp_path):
    previous = tmp_path / "previous"
    shutil.copytree(full_run.parent, previous, symlinks=True)
    shutil.rmtree(previous / CHECKPOINTS / "step-4")  # the newest is now step-2: DCP state only
    summary = run_training(
        compose(
            *random_run_overrides(
                random_shards, tmp_path / "next", f"trainer.init_from={previous}", max_steps=1, save_every=0
            )
        )  # fmt: skip
    )
    assert summary["init_from"] == str(previous / CHECKPOINTS / "step-2")
    # the new phase started from step-2's weights: its export equals them before any step is taken
    out = tmp_path / "step2"
    assert train_cli(["export", str(previous / CHECKPOINTS / "step-2"), str(out), "--dtype", "float32"]) == 0
    first = run_training(
        compose(
            *random_run_overrides(
                random_shards, tmp_path / "from_hf", f"trainer.init_from={out}", max_steps=1, save_every=0
            )
        )  # fmt: skip
    )
    assert first["first_loss"] == summary["first_loss"]


def test_readers_of_hugging_face_weights_name_the_export_command(full_run):
    with pytest.raises(ExportError, match="yue-train export .*step-2 OUT"):
        merged_model(full_run / "step-2")


def test_a_planted_metadata_pickle_is_refused_by_the_reader_itself(full_run, tmp_path):
    import os
    import pickle

    from yue_train.training.checkpointing.dcp import read_metadata

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch '{tmp_path / 'ran'}'",)

    folder = tmp_path / "dcp"
    shutil.copytree(full_run / "step-2" / "dcp", folder)
    (folder / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointFileError, match=r"dcp/\.metadata: refused to load \(it names posix\.system\)"):
        read_metadata(folder)
    assert not (tmp_path / "ran").exists()


def test_inference_names_the_export_command_for_a_dcp_only_checkpoint(full_run):
    from yue_train.generation.inputs import GenerateInputError, check_model_ref

    for ref in (full_run / "step-2", full_run / "step-2" / "model"):
        with pytest.raises(GenerateInputError, match=f"run `yue-train export {full_run / 'step-2'} OUT`"):
            check_model_ref("--stage1-model", str(ref))
    check_model_ref("--stage1-model", str(full_run / "step-4" / "model"))  # Hugging Face weights: fine


def test_hf_every_writes_hugging_face_weights_every_n_checkpoints(random_shards, tmp_path):
    run = tmp_path / "run"
    ov = random_run_overrides(
        random_shards, run, "trainer.hf_every=2", "trainer.keep_last=0", max_steps=5, save_every=1
    )
    run_training(compose(*ov))
    with_hf = [s for s in range(1, 6) if (run / CHECKPOINTS / f"step-{s}" / "model" / "model.safetensors").is_file()]
    assert with_hf == [2, 4, 5]  # every 2nd checkpoint, and the phase's last
    state = (run / CHECKPOINTS / "step-3" / TRAINER_STATE).read_text()
    assert '"checkpoint_format": "dcp"' in state and '"hf_weights": null' in state
