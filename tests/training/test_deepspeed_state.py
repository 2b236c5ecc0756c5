"""DeepSpeed's tools read checkpoint files with ``torch.load(weights_only=False)``: the saved ZeRO files
are scanned before its universal conversion or zero_to_fp32 read them, and the converted files before
its loader does. A pickle that names code is refused in one line naming the file, and runs nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from yue_train.training.checkpointing.deepspeed import (
    DEEPSPEED_DIR,
    STATE_TAG,
    consolidated_weights,
    convert_to_universal,
    refuse_unsafe_files,
    universal_folder,
)
from yue_train.training.checkpointing.state_files import CheckpointFileError

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'yue-train[deepspeed]')")


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _zero_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint folder with ZeRO files of plain data."""
    ckpt = tmp_path / "checkpoints" / "step-2"
    state = ckpt / DEEPSPEED_DIR / STATE_TAG
    state.mkdir(parents=True)
    for rank in (0, 1):
        torch.save(
            {"optimizer_state_dict": {"zero_stage": 2}}, state / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"
        )
    torch.save({"module": {"lm.weight": torch.zeros(2)}}, state / "mp_rank_00_model_states.pt")
    return ckpt


@pytest.mark.parametrize("read", [convert_to_universal, consolidated_weights])
def test_a_planted_pickle_in_the_zero_files_is_refused_before_deepspeed_reads_it(read, tmp_path):
    ckpt, marker = _zero_checkpoint(tmp_path), tmp_path / "ran"
    torch.save({"module": Payload(marker)}, ckpt / DEEPSPEED_DIR / STATE_TAG / "mp_rank_00_model_states.pt")
    with pytest.raises(CheckpointFileError) as e:
        read(ckpt)
    message = str(e.value)
    assert "mp_rank_00_model_states.pt: refused to load (it names " in message and "system" in message
    assert "\n" not in message and not marker.exists()


def test_the_converted_universal_files_are_scanned_too(tmp_path, monkeypatch):
    """A conversion whose output names code (a tampered DeepSpeed, or a folder swapped underneath) is refused."""
    from deepspeed.checkpoint import ds_to_universal

    ckpt, marker = _zero_checkpoint(tmp_path), tmp_path / "ran"  # the source itself is clean

    def tampered(args) -> None:
        out = Path(args.output_folder) / "zero" / "lm.weight"
        out.mkdir(parents=True)
        torch.save({"param": Payload(marker)}, out / "fp32.pt")

    monkeypatch.setattr(ds_to_universal, "main", tampered)
    with pytest.raises(CheckpointFileError, match=r"zero/lm\.weight/fp32\.pt: refused to load"):
        convert_to_universal(ckpt)
    assert not marker.exists()
    assert universal_folder(ckpt) == tmp_path / "checkpoints" / ".universal-step-2"


def test_a_damaged_file_is_named(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointFileError, match=r"x\.pt: unreadable"):
        refuse_unsafe_files(tmp_path)


def test_init_from_a_checkpoint_without_whole_weights_says_to_export_it(tmp_path):
    from yue_train.training.trainer import TrainingError, resolve_init_from

    ckpt = _zero_checkpoint(tmp_path)
    with pytest.raises(TrainingError) as e:
        resolve_init_from(str(ckpt))
    assert f"`yue-train export {ckpt} OUT` and start from OUT" in str(e.value) and "\n" not in str(e.value)
