"""The one allowlist (yue_train.safe_pickle): training snapshots load as data, a pickle that would run code is
refused, and the static scan agrees with the loader."""

from __future__ import annotations

import collections
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from yue_train.codec.convert_files import snapshot_allowlist
from yue_train.safe_pickle import (
    Allowlist,
    CheckpointReadError,
    InertObject,
    UnsafeCheckpointError,
    refused_globals,
    restricted_torch_load,
)


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_foreign_pickle_is_refused_and_never_executed(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    obj = _RunsCode(marker) if payload == "system" else _Evals()
    torch.save({"codec_model": {"w": torch.zeros(2)}, "extra": obj}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        restricted_torch_load(path)
    msg = str(err.value)
    assert str(path) in msg
    assert ("system" in msg) if payload == "system" else ("builtins.eval" in msg)
    assert not marker.exists()


def test_plain_pickle_with_code_is_refused(tmp_path):
    """Not even torch's format: a bare pickle file. Refused as unreadable or unsafe, never run."""
    marker = tmp_path / "pwned"
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises((UnsafeCheckpointError, CheckpointReadError)) as err:
        restricted_torch_load(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_training_snapshot_objects_load_as_inert_data(tmp_path):
    import numpy as np
    from omegaconf import OmegaConf

    path = tmp_path / "snap.pth"
    torch.save(
        {
            "model": {"w": torch.arange(6.0).reshape(2, 3), "p": torch.nn.Parameter(torch.ones(2))},
            "cfg": OmegaConf.create({"a": 1, "b": [1, 2]}),
            "np": np.float32(2.5),
            "opt": {"param_groups": [{"betas": (0.8, 0.99)}]},
        },
        path,
    )
    loaded = restricted_torch_load(path, snapshot_allowlist())
    torch.testing.assert_close(loaded["model"]["w"], torch.arange(6.0).reshape(2, 3))
    assert isinstance(loaded["cfg"], InertObject) and isinstance(loaded["np"], InertObject)
    assert loaded["opt"]["param_groups"][0]["betas"] == (0.8, 0.99)


def test_explicit_inert_allowance_stubs_instead_of_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"x": _RunsCode(marker)}, path)
    qualname = f"{os.system.__module__}.system"
    loaded = restricted_torch_load(path, snapshot_allowlist((qualname,)))
    assert isinstance(loaded["x"], InertObject) and not marker.exists()


def test_the_scan_and_the_loader_agree_on_plain_data(tmp_path):
    """What torch.save writes for tensors and containers passes both, so the scan never refuses a good file."""
    path = tmp_path / "plain.pt"
    state = {
        "w": torch.ones(2, dtype=torch.bfloat16), "p": torch.nn.Parameter(torch.zeros(1)), "t": (1, "a", None, 2.5),
        "b": b"x", "s": {3}, "od": collections.OrderedDict(a=torch.arange(3)), "dev": torch.device("cpu"),
    }  # fmt: skip
    torch.save(state, path)
    assert refused_globals(path, Allowlist()) == []
    loaded = restricted_torch_load(path)
    assert loaded["t"] == state["t"] and loaded["s"] == {3} and torch.equal(loaded["od"]["a"], torch.arange(3))


def test_the_scan_names_a_payload_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": _RunsCode(marker)}, path)
    assert refused_globals(path, Allowlist()) == [f"{os.system.__module__}.system"]
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage"])
def test_unreadable_checkpoint_errors_name_the_file(tmp_path, kind):
    path = tmp_path / "ckpt.pth"
    if kind == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointReadError) as err:
        restricted_torch_load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x04\x95" + (2**62).to_bytes(8, "little"),  # FRAME longer than any machine: OverflowError
        b"\x80\x04\x8e" + (2**40).to_bytes(8, "little"),  # BINBYTES8 of 1 TiB: MemoryError
        b"\x80\x02R.",  # REDUCE on an empty stack
    ],
    ids=["frame-overflow", "binbytes-1tib", "reduce-empty-stack"],
)
def test_corrupt_pickle_lengths_and_opcodes_error_name_the_file(tmp_path, payload):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(payload)
    with pytest.raises(CheckpointReadError) as err:
        restricted_torch_load(path)
    assert str(path) in str(err.value)


@pytest.mark.slow
def test_convert_cli_refuses_foreign_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"codec_model": _RunsCode(marker)}, path)
    assert zipfile.is_zipfile(path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "yue_train.codec.cli",
            "convert-codec",
            "--xcodec-ckpt",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert str(path) in proc.stderr and "refusing" in proc.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()
