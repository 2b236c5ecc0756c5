"""The model door (:mod:`yue_train.models.hub`): planted custom code never runs, pickle weights are never
loaded, and a config's sizes are checked before anything is allocated; each refusal is one line naming the
folder, through ``yue-infer generate``, ``yue-train export`` and ``YuE.from_pretrained``. ``y`` waits on
stdin for the question transformers asks before it runs a folder's code: nothing may ask it."""

from __future__ import annotations

import ast
import io
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from inference.cli import main as infer_main
from tests.conftest import REPO
from yue_train.cli.train import main as train_main
from yue_train.models import hub

PACKAGES = ("yue_train", "inference", "data_prep")
GUARDED_CALLS = {"from_pretrained", "load_adapter"}
# the door itself (``hub.from_pretrained``) and the project's own classmethod, which goes through it
DOOR_RECEIVERS = {"hub", "YuE"}


def test_no_from_pretrained_call_bypasses_the_door():
    door = REPO / "yue_train" / "models" / "hub.py"
    bypasses = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == door:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                receiver = node.func.value
                if node.func.attr in GUARDED_CALLS and not (
                    isinstance(receiver, ast.Name) and receiver.id in DOOR_RECEIVERS
                ):
                    bypasses.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.func.attr}(...)")
    assert not bypasses, "load through yue_train.models.hub instead:\n" + "\n".join(bypasses)


def _tiny_config(**changes: object) -> LlamaConfig:
    sizes = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=64)  # fmt: skip
    return LlamaConfig(**{**sizes, **changes})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny plain LLaMA folder (safetensors) and a LoRA adapter on it."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("door")
    torch.manual_seed(0)
    LlamaForCausalLM(_tiny_config()).save_pretrained(root / "model")
    peft = get_peft_model(LlamaForCausalLM(_tiny_config()), LoraConfig(r=2, target_modules=["q_proj"]))
    peft.save_pretrained(root / "lora")
    return root


def _custom_code(folder: Path, marker: Path, config: dict) -> Path:
    """A model folder whose config points transformers at ``evil.py``, which writes ``marker`` when run."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n"
    )
    save_file({"x": torch.zeros(4)}, str(folder / "model.safetensors"))
    return folder


AUTO_MAP = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
CUSTOM_CODE = {
    "unknown-type-auto-map": ({"model_type": "evil", "auto_map": AUTO_MAP}, "auto_map"),
    "llama-with-auto-map": ({**_tiny_config().to_dict(), "auto_map": AUTO_MAP}, "auto_map"),
    "unknown-type": ({"model_type": "evil", "hidden_size": 16}, "model_type 'evil'"),
    "no-type": ({"hidden_size": 16}, "model_type None"),
    "sub-config-type": ({**_tiny_config().to_dict(), "text_config": {"model_type": "evil"}}, "text_config"),
}


def _pickle_only(folder: Path, marker: Path) -> Path:
    """A valid config whose weights are a pickle that writes ``marker`` when unpickled."""
    folder.mkdir(parents=True)
    _tiny_config().save_pretrained(folder)

    class Plant:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Plant()}))
    return folder


@pytest.fixture
def stdin_yes(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n" * 20))


def _one_line(err: str, prefix: str, *expected: str) -> str:
    assert "Traceback" not in err, err
    assert err.startswith(prefix) and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    return err


def _generate(tmp_path: Path, stage1: Path, stage2: Path, *extra: str) -> list[str]:
    (tmp_path / "genre.txt").write_text("pop")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla la\n")
    return [
        "generate", "--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt"),
        "--stage1-model", str(stage1), "--stage2-model", str(stage2), "--out", str(tmp_path / "out"),
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(CUSTOM_CODE))
def test_custom_code_is_refused_by_yue_infer_generate(name, tmp_path, tiny, capsys, stdin_yes):
    config, expected = CUSTOM_CODE[name]
    marker = tmp_path / "marker"
    folder = _custom_code(tmp_path / "evil", marker, config)
    assert infer_main(_generate(tmp_path, folder, tiny / "model")) == 2
    _one_line(capsys.readouterr().err, "yue-infer generate: error: ", str(folder), expected)
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(CUSTOM_CODE))
def test_custom_code_is_refused_by_yue_train_export(name, tmp_path, capsys, stdin_yes):
    config, expected = CUSTOM_CODE[name]
    marker = tmp_path / "marker"
    _custom_code(tmp_path / "ckpt" / "model", marker, config)
    assert train_main(["export", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", str(tmp_path / "ckpt" / "model"), expected)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_custom_code_in_a_dcp_checkpoints_model_config_is_refused_by_export(tmp_path, capsys, stdin_yes):
    marker = tmp_path / "marker"
    ckpt = tmp_path / "ckpt"
    _custom_code(ckpt / "model_config", marker, CUSTOM_CODE["unknown-type-auto-map"][0])
    (ckpt / "dcp").mkdir()
    (ckpt / "dcp" / ".metadata").write_bytes(b"")
    assert train_main(["export", str(ckpt), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", "model_config", "auto_map")
    assert not marker.exists()


def test_custom_code_is_refused_by_the_python_api(tmp_path, tiny, stdin_yes):
    from yue_train.api import YuE

    marker = tmp_path / "marker"
    folder = _custom_code(tmp_path / "evil", marker, CUSTOM_CODE["unknown-type-auto-map"][0])
    with pytest.raises(ValueError, match="auto_map") as e:
        YuE.from_pretrained(folder, tiny / "model", device="cpu")
    assert "\n" not in str(e.value) and str(folder) in str(e.value)
    with pytest.raises(ValueError, match="auto_map"):
        YuE.from_pretrained(tiny / "model", folder, device="cpu")
    assert not marker.exists()


def test_pickle_weights_are_refused_naming_the_conversion(tmp_path, tiny, capsys):
    marker = tmp_path / "marker"
    folder = _pickle_only(tmp_path / "ckpt" / "model", marker)
    assert train_main(["export", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", str(folder), "yue-train convert-weights")
    assert infer_main(_generate(tmp_path, folder, tiny / "model")) == 2
    _one_line(capsys.readouterr().err, "yue-infer generate: error: ", str(folder), "convert-weights")
    assert not marker.exists()


def test_convert_weights_turns_pickle_weights_into_a_loadable_folder(tmp_path, tiny, capsys):
    src = tmp_path / "src"
    shutil.copytree(tiny / "model", src)
    model = hub.load_model(tiny / "model")
    (src / "model.safetensors").unlink()
    torch.save(model.state_dict(), src / "pytorch_model.bin")
    (src / "modeling_evil.py").write_text("raise SystemExit('never copied')")
    assert train_main(["convert-weights", str(src), str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "modeling_evil.py").exists()
    converted = hub.load_model(tmp_path / "out")
    for (name, a), (_, b) in zip(model.state_dict().items(), converted.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    marker = tmp_path / "marker"
    _pickle_only(tmp_path / "bad", marker)
    capsys.readouterr()
    assert train_main(["convert-weights", str(tmp_path / "bad"), str(tmp_path / "out2")]) == 2
    _one_line(capsys.readouterr().err, "yue-train convert-weights: error: ", "could run code")
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad", "out", "src"]


SIZE_CASES = {
    "33B-claim": ({"hidden_size": 8192, "intermediate_size": 22016, "num_hidden_layers": 60}, "do not belong"),
    "hidden-negative": ({"hidden_size": -1}, "hidden_size=-1"),
    "vocab-huge": ({"vocab_size": 10**12}, "vocab_size="),
    "layers-float": ({"num_hidden_layers": 2.5}, "num_hidden_layers=2.5"),
    "intermediate-string": ({"intermediate_size": "64"}, "intermediate_size='64'"),
    "inf-rope": ({"rope_theta": "__INF__"}, "finite"),
}


@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_config_sizes_are_checked_before_allocating(name, tmp_path, tiny, capsys):
    changes, expected = SIZE_CASES[name]
    model = tmp_path / "ckpt" / "model"
    shutil.copytree(tiny / "model", model)
    config = {**json.loads((model / "config.json").read_text()), **changes}
    (model / "config.json").write_text(json.dumps(config).replace('"__INF__"', "1e999"))
    assert train_main(["export", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", str(model), expected)


def test_a_dcp_model_config_larger_than_its_tensors_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    (ckpt / "model_config").mkdir(parents=True)
    _tiny_config(hidden_size=8192, intermediate_size=22016, num_hidden_layers=60).save_pretrained(ckpt / "model_config")
    (ckpt / "dcp").mkdir()
    (ckpt / "dcp" / ".metadata").write_bytes(b"")
    (ckpt / "dcp" / "__0_0.distcp").write_bytes(b"\0" * 4096)
    assert train_main(["export", str(ckpt), str(tmp_path / "out")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", "model_config", "do not belong")


ADAPTER_CASES = {
    "rank-1e8": ({"r": 10**8}, "r=100000000"),
    "rank-over-width": ({"r": 17}, "r=17"),
    "rank-pattern": ({"rank_pattern": {"q_proj": 10**6}}, "rank_pattern"),
    "alpha-1e308": ({"lora_alpha": 1e308}, "lora_alpha=1e+308"),
    "alpha-pattern": ({"alpha_pattern": {"q_proj": 1e300}}, "alpha_pattern"),
    "import-module": ({"auto_mapping": {"base_model_class": "X", "parent_library": "evil"}}, "'evil'"),
    "megatron": ({"megatron_config": {"x": 1}}, "megatron_config"),
    "auto-map": ({"auto_map": AUTO_MAP}, "auto_map"),
}


@pytest.mark.parametrize("name", sorted(ADAPTER_CASES))
def test_adapter_configs_are_bounded_and_import_nothing(name, tmp_path, tiny, capsys):
    changes, expected = ADAPTER_CASES[name]
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny / "lora", ckpt / "adapter")
    config = {**json.loads((ckpt / "adapter" / "adapter_config.json").read_text()), **changes}
    (ckpt / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    assert train_main(["export", str(ckpt), str(tmp_path / "out"), "--base", str(tiny / "model")]) == 2
    _one_line(capsys.readouterr().err, "yue-train: error: ", "adapter", expected)
    assert not (tmp_path / "out").exists()


def test_a_good_adapter_still_exports(tmp_path, tiny):
    shutil.copytree(tiny / "lora", tmp_path / "ckpt" / "adapter")
    out = tmp_path / "out"
    assert train_main(["export", str(tmp_path / "ckpt"), str(out), "--base", str(tiny / "model")]) == 0
    assert (out / "model.safetensors").is_file()


def test_trust_remote_code_cannot_be_asked_for(tiny):
    from transformers import AutoConfig

    with pytest.raises(hub.PretrainedRefused, match="never run"):
        hub.from_pretrained(AutoConfig, tiny / "model", "config", trust_remote_code=True)
