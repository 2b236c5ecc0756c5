"""Small or sparse files that would make the process allocate gigabytes, each read in a subprocess under
``RLIMIT_AS``: an allocation the checks missed is a MemoryError there, not a slow test here.

- Audio: a two-hour WAV (sparse: 1.3 GB on paper, nothing on disk) is refused by the evaluation, its
  ``yue-eval`` and its voice target before it is decoded, in one line naming the file and the limit.
- Pickles: a few dozen bytes that call a permitted constructor (``bytes``, ``bytearray``, a storage class,
  ``torch.Tensor``, ``_rebuild_from_type_v2`` calling one) with a size of gigabytes, planted as a DCP
  ``.metadata`` (resume's verification, ``yue-train export``) or inside a torch file (every ``.pt`` state
  file): refused in one line naming the file."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

AUDIO_CAP = 512 << 20  # numpy, soundfile and soxr fit; two hours decoded at 16 kHz (460 MB, twice) do not
TORCH_CAP = 2 << 30  # torch and transformers fit; every planted allocation is larger
TWO_HOURS = 2 * 3600
HUGE = 3_400_000_000


def sparse_wav(path: Path, seconds: int, rate: int = 44_100, channels: int = 2) -> Path:
    """A 16-bit PCM WAV of ``seconds`` of silence, its samples a hole in the file (no disk used)."""
    data_bytes = seconds * rate * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data_bytes)
    return path


def _capped(script: str, cap: int, *args: str) -> dict[str, str]:
    """Run ``script`` under RLIMIT_AS=``cap``; it prints one JSON object of case -> outcome last."""
    code = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n{script}"
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ audio
AUDIO_SCRIPT = """
import json, sys
from pathlib import Path
from yue_train.evaluation.songs import SongLoadError, load_songs
root = Path(sys.argv[1])
out = {}
for case in sorted(p.name for p in root.iterdir()):
    try:
        out[case] = f"loaded {len(load_songs(root / case))}"
    except SongLoadError as e:
        out[case] = str(e)
    except MemoryError:
        out[case] = "MemoryError"
print(json.dumps(out))
"""


def _song_folder(root: Path) -> Path:
    sparse_wav(root / "song" / "mix.wav", TWO_HOURS)
    (root / "song" / "lyrics.txt").write_text("[verse]\nla\n")
    return root


def _generated(root: Path) -> Path:
    sparse_wav(root / "song00" / "mix_16k.wav", TWO_HOURS, rate=16_000, channels=1)
    entry = {"dir": "song00", "audio": {"mix_16k": "mix_16k.wav"}}
    (root / "report.json").write_text(json.dumps({"songs": [entry]}))
    return root


AUDIO_CASES = {
    "audio-file": (lambda r: sparse_wav(r / "long.wav", TWO_HOURS), "long.wav"),
    "audio-file-16k-mono": (lambda r: sparse_wav(r / "a" / "long.wav", TWO_HOURS, 16_000, 1), "long.wav"),
    "song-folder-mix": (_song_folder, "mix.wav"),
    "generated-report": (_generated, "mix_16k.wav"),
    "stem-vocals": (
        lambda r: (sparse_wav(r / "s" / "mix.wav", 3), sparse_wav(r / "s" / "vocals.wav", TWO_HOURS)),
        "vocals.wav",
    ),  # fmt: skip
    "just-over-the-limit": (lambda r: sparse_wav(r / "x.wav", 20 * 60 + 1, 16_000, 1), "x.wav"),
}


@pytest.fixture(scope="module")
def audio_results(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("long_audio")
    for name, (make, _) in AUDIO_CASES.items():
        (root / name).mkdir()
        make(root / name)
    (root / "twenty-minutes").mkdir()
    sparse_wav(root / "twenty-minutes" / "ok.wav", 20 * 60, 16_000, 1)
    return _capped(AUDIO_SCRIPT, AUDIO_CAP, str(root))


@pytest.mark.parametrize("name", sorted(AUDIO_CASES))
def test_long_audio_is_refused_before_it_is_decoded(name, audio_results):
    message = audio_results[name]
    file_name = AUDIO_CASES[name][1]
    assert "\n" not in message and file_name in message and "longer than the 1,200 s read here" in message, message


def test_audio_up_to_the_limit_is_read(audio_results):
    assert audio_results["twenty-minutes"] == "loaded 1"


def test_yue_eval_refuses_a_two_hour_song_in_one_line(tmp_path):
    sparse_wav(tmp_path / "songs" / "long.wav", TWO_HOURS)
    script = (
        "import json, sys, contextlib, io\nfrom inference.evaluate import main\nerr = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n    code = main(sys.argv[1:])\n"
        "print(json.dumps({'code': str(code), 'err': err.getvalue()}))"
    )
    out = _capped(script, TORCH_CAP, str(tmp_path / "songs"), "--metrics", "structure", "--out",
                  str(tmp_path / "out"), "--no-progress")  # fmt: skip
    assert out["code"] == "2", out
    err = out["err"]
    assert err.startswith("yue-eval: error: ") and err.count("\n") == 1 and "long.wav: 7,200 s of audio" in err, err
    assert not (tmp_path / "out").exists()


def test_a_two_hour_voice_target_is_one_line(tmp_path):
    from yue_train.evaluation.metrics.base import MetricError
    from yue_train.evaluation.metrics.voice import read_wave

    target = sparse_wav(tmp_path / "target.wav", TWO_HOURS)
    with pytest.raises(MetricError, match=r"target\.wav: 7,200 s of audio, longer than the 1,200 s") as e:
        read_wave(target)
    assert "\n" not in str(e.value)


def test_a_two_hour_reference_prompt_is_one_line(tmp_path):
    from types import SimpleNamespace

    from yue_train.generation.prompts import PromptInputError
    from yue_train.generation.reference import Reference, reference_ids

    codec = SimpleNamespace(config=SimpleNamespace(sample_rate=16_000), encode=lambda *a, **k: pytest.fail("encoded"))
    ref = Reference(mix=str(sparse_wav(tmp_path / "ref.wav", TWO_HOURS)))
    with pytest.raises(PromptInputError, match=r"ref\.wav: 7,200 s of audio, longer than the 1,200 s") as e:
        reference_ids(ref, codec)
    assert "\n" not in str(e.value)


def test_yue_prep_align_refuses_a_two_hour_vocal_in_one_line(tmp_path, capsys):
    from data_prep.cli import main as prep_main

    song = tmp_path / "songs" / "a"
    sparse_wav(song / "vocals.wav", TWO_HOURS)
    sparse_wav(song / "mix.wav", 1)
    (song / "lyrics.txt").write_text("[verse]\nla la\n")
    (song / "tags.txt").write_text("pop")
    assert prep_main(["align", str(tmp_path / "songs"), "--aligner", "pocketsphinx"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "a: not aligned: " in err and "vocals.wav: 7,200 s of audio" in err, err


# ------------------------------------------------------------------------------------------ pickles
class _Call:
    """Pickles as one call of ``func`` with ``args`` (a REDUCE opcode): what a planted file can do."""

    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _constructors() -> dict[str, _Call]:
    from torch._tensor import _rebuild_from_type_v2

    return {
        "bytes": _Call(bytes, (HUGE,)),
        "bytearray": _Call(bytearray, (HUGE,)),
        "float-storage": _Call(torch.FloatStorage, (HUGE,)),
        "untyped-storage": _Call(torch.UntypedStorage, (HUGE,)),
        "tensor": _Call(torch.Tensor, (HUGE,)),
        "tensor-2d": _Call(torch.Tensor, (60_000, 60_000)),
        "tensor-size": _Call(torch.Tensor, (torch.Size([HUGE]),)),
        "rebuild-from-type": _Call(_rebuild_from_type_v2, (bytes, torch.Tensor, (HUGE,), None)),
        "in-a-list": [1, {"x": _Call(bytearray, (HUGE,))}],
    }


PICKLE_SCRIPT = """
import json, sys
from pathlib import Path
from yue_train.training.checkpointing.dcp import storage_problem
from yue_train.training.checkpointing.state_files import CheckpointFileError, load_plain
root = Path(sys.argv[1])
out = {}
for case in sorted(p.name for p in root.iterdir()):
    try:
        out[f"metadata/{case}"] = str(storage_problem(root / case / "dcp", "dcp"))
    except MemoryError:
        out[f"metadata/{case}"] = "MemoryError"
    try:
        load_plain(root / case / "data.pt")
        out[f"torch/{case}"] = "loaded"
    except CheckpointFileError as e:
        out[f"torch/{case}"] = str(e)
    except MemoryError:
        out[f"torch/{case}"] = "MemoryError"
import contextlib, io
from yue_train.cli.train import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    out["export-code"] = str(main(["export", sys.argv[2], str(Path(sys.argv[2]).parent / "out")]))
out["export-err"], out["export-left"] = err.getvalue(), str(sorted(p.name for p in Path(sys.argv[2]).parent.iterdir()))
print(json.dumps(out))
"""


def _export_bomb(ckpt: Path) -> Path:
    """A DCP checkpoint (model_config/ + dcp/) whose 44-byte .metadata calls bytes(3.4e9)."""
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                num_key_value_heads=1).save_pretrained(ckpt / "model_config")  # fmt: skip
    (ckpt / "dcp").mkdir()
    (ckpt / "dcp" / ".metadata").write_bytes(pickle.dumps(_Call(bytes, (HUGE,)), protocol=4))
    (ckpt / "dcp" / "__0_0.distcp").write_bytes(b"\0" * 65536)  # what the config's sizes need
    return ckpt


@pytest.fixture(scope="module")
def pickle_results(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pickles")
    ckpt = _export_bomb(tmp_path_factory.mktemp("export") / "ckpt")
    for name, call in _constructors().items():
        (root / name / "dcp").mkdir(parents=True)
        (root / name / "dcp" / ".metadata").write_bytes(pickle.dumps(call, protocol=4))
        (root / name / "dcp" / "__0_0.distcp").write_bytes(b"\0" * 64)
        torch.save({"state": call}, root / name / "data.pt")
    assert len((root / "bytes" / "dcp" / ".metadata").read_bytes()) == 44
    return _capped(PICKLE_SCRIPT, TORCH_CAP, str(root), str(ckpt))


PICKLE_CASES = [f"{where}/{name}" for where in ("metadata", "torch") for name in sorted(_constructors())]
# torch.load hands the storage classes it finds its own StorageType records, which cannot be called
OTHER_REFUSALS = {"torch/float-storage": "'StorageType' object is not callable"}


@pytest.mark.parametrize("case", PICKLE_CASES)
def test_a_pickle_asking_for_gigabytes_is_refused_in_one_line(case, pickle_results):
    message = pickle_results[case]
    file_name = ".metadata" if case.startswith("metadata/") else "data.pt"
    expected = OTHER_REFUSALS.get(case, "bytes can hold; refused")
    assert "\n" not in message and file_name in message and expected in message, message


def test_export_of_a_checkpoint_with_a_44_byte_metadata_bomb_is_one_line(pickle_results, tmp_path):
    code, err = pickle_results["export-code"], pickle_results["export-err"]
    assert code == "2" and err.count("\n") == 1 and "builtins.bytes() is asked for 3,400,000,000" in err, err
    assert "out" not in pickle_results["export-left"]


def test_permitted_constructors_of_a_real_size_still_load(tmp_path):
    """What torch.save and protocol 2 write through these names keeps loading: bytes, a bytearray, a tensor
    subclass state (``_rebuild_from_type_v2``), and storages."""
    from yue_train.safe_pickle import Allowlist, restricted_load
    from yue_train.training.checkpointing.state_files import load_plain

    t = torch.arange(6.0)
    t.note = "kept"  # a tensor with a __dict__ pickles through _rebuild_from_type_v2
    value = {"b": b"\x00\xff" * 10, "ba": bytearray(b"abc"), "t": t, "p": torch.nn.Parameter(torch.ones(2))}
    torch.save(value, tmp_path / "x.pt")
    loaded = load_plain(tmp_path / "x.pt")
    assert loaded["b"] == value["b"] and loaded["ba"] == value["ba"] and loaded["t"].note == "kept"
    assert torch.equal(loaded["t"], t) and isinstance(loaded["p"], torch.nn.Parameter)
    assert restricted_load(pickle.dumps(value["b"], protocol=2), Allowlist(), "p2") == value["b"]
    assert restricted_load(pickle.dumps(_Call(bytes, (8,))), Allowlist(), "small") == b"\0" * 8
