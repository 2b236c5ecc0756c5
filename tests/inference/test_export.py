"""An exported model is a plain LLaMA checkpoint that plain transformers generates from with its KV cache."""

import json

import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from yue_train.cli.train import main as train_cli
from yue_train.models.loading import ModelSpec, build_model


def test_export_generates_with_kv_cache(tmp_path):
    # a full checkpoint as training writes it: built by training's loader, which turns the cache off
    model = build_model(ModelSpec(name="tiny_s1"), torch.device("cpu"))
    model.save_pretrained(tmp_path / "ckpt" / "model")
    out = tmp_path / "export"
    assert train_cli(["export", str(tmp_path / "ckpt"), str(out), "--dtype", "float32"]) == 0

    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    assert config["use_cache"] is True and generation.get("use_cache", True) is True
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert "auto_map" not in config and not list(out.glob("*.py"))  # no custom code to trust

    exported = AutoModelForCausalLM.from_pretrained(out)
    assert type(exported) is LlamaForCausalLM
    seen: list[int] = []
    exported.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    prompt = torch.arange(32_000, 32_010)[None]
    new = exported.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, min_new_tokens=6,
                            do_sample=False, pad_token_id=0)  # fmt: skip
    assert new.shape == (1, 16)
    assert seen == [10, 1, 1, 1, 1, 1]  # the prompt once, then one new token per step
