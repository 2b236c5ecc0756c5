"""A LoRA adapter trained by yue-train loads in generation, changes the logits, and its merged export
generates the same tokens as base + adapter (greedy)."""

import numpy as np
import pytest
import torch

from yue_train.cli.train import main as train_cli
from yue_train.config.compose import compose_config
from yue_train.format import sequences as seq
from yue_train.generation.loading import load_lm
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.stage1 import generate_section
from yue_train.training.checkpointing.publish import latest_checkpoint
from yue_train.training.trainer import run_training


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("lora") / "run"
    cfg = compose_config(
        [
            "recipe=tiny_lora",
            f"trainer.run_dir={run}",
            "trainer.max_steps=6",
            "optim.lr=2e-2",
            "data.demo_corpus.n_songs=8",
        ]
    )
    run_training(cfg)
    return run, latest_checkpoint(run)


@pytest.mark.slow
def test_trained_adapter_changes_logits_and_merges_exactly(lora_run, synth_tokenizer, tmp_path):
    run, ckpt = lora_run
    device = torch.device("cpu")
    base = load_lm(str(run / "base_model"), device)
    adapted = load_lm(str(run / "base_model"), device, adapters=[str(ckpt / "adapter")])
    assert train_cli(["export", str(ckpt), str(tmp_path / "merged"), "--dtype", "float32"]) == 0
    merged = load_lm(str(tmp_path / "merged"), device)

    prompt = seq.first_section_prompt(synth_tokenizer, "pop", seq.split_lyrics("[verse]\nla la\n")).ids
    ids = torch.as_tensor(prompt)[None]
    with torch.no_grad():
        lb, la, lm = (m(input_ids=ids, use_cache=False).logits for m in (base, adapted, merged))
    assert (la - lb).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(lm, la, rtol=0, atol=1e-4)

    cfg = SamplingConfig(greedy=True, max_new_tokens=40, min_new_tokens=40)
    context = torch.as_tensor(prompt)
    tokens_adapted = generate_section(adapted, context, cfg, guidance=1.5)
    tokens_merged = generate_section(merged, context, cfg, guidance=1.5)
    assert tokens_adapted.tolist() == tokens_merged.tolist()


@pytest.mark.slow
def test_generate_cli_with_adapter(lora_run, tmp_path):
    from inference.cli import main as infer_main

    run, ckpt = lora_run
    (tmp_path / "g.txt").write_text("pop\n")
    (tmp_path / "l.txt").write_text("[verse]\nla\n")
    common = ["generate", "--genre-txt", str(tmp_path / "g.txt"), "--lyrics-txt", str(tmp_path / "l.txt"),
              "--stage1-model", str(run / "base_model"), "--stage2-model", str(run / "base_model"), "--greedy",
              "--max-new-tokens", "12", "--min-new-tokens", "12", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert infer_main([*common, "--out", str(tmp_path / "base")]) == 0
    assert infer_main([*common, "--out", str(tmp_path / "lora"), "--adapter", str(ckpt / "adapter")]) == 0
    a = np.load(tmp_path / "base" / "song00" / "stage1_ids.npy")
    b = np.load(tmp_path / "lora" / "song00" / "stage1_ids.npy")
    assert len(a) == len(b) and not np.array_equal(a, b)  # same prompt, the adapter changes what is generated
    bad = [*common, "--out", str(tmp_path / "x"), "--adapter", str(ckpt / "adapter"), "--active-adapter", "a7"]
    assert infer_main(bad) == 2
