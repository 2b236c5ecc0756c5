"""Bad configs: one clear error line each, before any model is built or run folder written."""

from __future__ import annotations

import pytest

from tests.training.helpers import write_random_shards
from yue_train.cli.train import main


@pytest.fixture
def shards(tmp_path):
    return write_random_shards(tmp_path / "shards", 10)


CASES = {
    "unknown_recipe": (["recipe=nope"], "unknown recipe 'nope'"),
    "lora_target": (["recipe=tiny_lora", "lora.target_modules=[q_proj,wq]"], "lora.target_modules: wq not in the model"),
    "seq_len": (["recipe=tiny", "data.seq_len=100000"], "data.seq_len=100000 exceeds the model's 4096 positions"),
    "missing_shards": (["recipe=tiny_random", "data.train=[{path: /nonexistent/shards}]"], "no shard folder"),
    "tokenizer_vocab": (["recipe=tiny_random", "model.tokenizer=synthetic", "data.train=[{path: SHARDS}]"],
                        "tokenizer/model vocabulary mismatch: the tokenizer has 83738 ids"),
    "tokenizer_file": (["recipe=tiny_random", "model.tokenizer=/etc/passwd", "data.train=[{path: SHARDS}]"],
                       "model.tokenizer: /etc/passwd is not a SentencePiece tokenizer model"),
    "bad_key": (["recipe=tiny", "trainer.no_such_key=1"], "no_such_key"),
    "no_data": (["recipe=tiny", "data.train=???"], "missing value for data.train"),
    "hub_offline": (["recipe=tiny", "model.path=/nonexistent/model"], "model: cannot read the config of /nonexistent"),
    "unknown_role": (["recipe=tiny", "trainer.loss.role_weights.vocals=0"], "vocals"),
    "unknown_role_added": (["recipe=tiny", "+trainer.loss.role_weights.vocals=0"],
                           "unknown config key trainer.loss.role_weights.vocals (did you mean trainer.loss.role_weights.vocal?)"),
    "strategy": (["recipe=tiny", "distributed.strategy=horovod"], "distributed.strategy='horovod'; choose one of"),
    "cpu_offload": (["recipe=tiny", "distributed=fsdp2", "distributed.cpu_offload=true"],
                    "distributed.cpu_offload=true moves GPU state to CPU memory"),
    "ds_config": (["recipe=tiny", "distributed=deepspeed_zero2", "distributed.config_file=/nonexistent.json"],
                  "no DeepSpeed config at /nonexistent.json"),
    "global_batch": (["recipe=tiny_random", "data.train=[{path: SHARDS}]", "trainer.global_batch_size=6",
                      "data.batch_size=4"], "trainer.global_batch_size=6 is not a whole multiple of data.batch_size (4)"),
    "rounds_and_budget": (["recipe=tiny_random", "data.train=[{path: SHARDS, rounds: 2, tokens: 5000}]",
                           "trainer.max_tokens=1000"], "trainer.max_tokens=1000 is set but data.train gives rounds"),
    "rounds_unsized": (["recipe=tiny_random", "data.train=[{path: SHARDS, rounds: 2}]"], "add tokens: N to the entry"),
    # Recipes on the demo corpus: a config error leaves no corpus (and so no run folder) behind.
    "own_data_missing": (["recipe=tiny", "data.train=[{path: /nonexistent/shards}]"], "no shard folder"),
    "demo_batch": (["recipe=tiny", "trainer.global_batch_size=3", "data.batch_size=2"],
                   "trainer.global_batch_size=3 is not a whole multiple of data.batch_size (2)"),
    "demo_rounds": (["recipe=tiny", "data.train=[{path: SHARDS, rounds: 2}]"], "add tokens: N to the entry"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_clear_line(case, tmp_path, shards, capsys):
    args, expected = CASES[case]
    run_dir = tmp_path / "run"
    args = [a.replace("SHARDS", str(shards)) for a in args] + [f"trainer.run_dir={run_dir}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("yue-train: error: "), err
    assert expected in err[0]
    assert not run_dir.exists()  # nothing heavy happened: no run folder, no demo corpus, no model


def test_shards_for_a_bigger_vocabulary_are_refused_up_front(tmp_path, capsys):
    big = write_random_shards(tmp_path / "big", 5, vocab=83_968, seed=3)
    run_dir = tmp_path / "run"
    assert main(["recipe=tiny_random", f"data.train=[{{path: '{big}'}}]", f"trainer.run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the model has 512 embedding rows" in err[0]
    assert not run_dir.exists()


def test_own_data_on_a_demo_recipe_writes_no_demo_corpus(tmp_path, shards, capsys):
    """``recipe=tiny`` trains on the demo corpus; given the user's data.train it must not generate it."""
    run_dir = tmp_path / "run"
    args = ["recipe=tiny", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}", "trainer.max_steps=1",
            "trainer.save_every=0", "data.eval_fraction=0", "trainer.cpu_threads=1"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    assert (run_dir / "metrics.jsonl").is_file()
    assert not (run_dir / "demo_corpus").exists()
