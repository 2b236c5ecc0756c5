"""The phase plan (yue_train.training.plan) and the multiphase pre-training recipes (recipes/pretrain)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from yue_train.config.compose import available_recipes, compose_config, find_recipes
from yue_train.config.schema import check_schema
from yue_train.data.pretrain_corpus import prepare_synthetic_datasets
from yue_train.data.shards import SUMMARY_NAME, ShardWriter, shard_paths, write_json_atomic
from yue_train.data.train_data import build_train_data
from yue_train.format.document import Document
from yue_train.format.roles import Role
from yue_train.training.plan import PlanError, dataset_size, human, plan_phase


def write_dataset(folder: Path, lengths: list[int], docs_per_shard: int = 3, summary: bool = True) -> Path:
    """Real shards (the project's ShardWriter) and, like `yue-prep tokenize`, a summary.json listing them."""
    with ShardWriter(folder, prefix="t", max_docs=docs_per_shard) as w:
        for i, n in enumerate(lengths):
            w.write(Document(np.arange(n) % 97, np.full(n, Role.VOCAL), {"id": f"{folder.name}-{i}", "mode": "t"}))
        shards = w.close()
    if summary:
        write_json_atomic(folder / SUMMARY_NAME, {"shards": shards, "tokens_total": sum(lengths)})
    return folder


def cfg_of(train: list[dict], **trainer) -> OmegaConf:
    t = {"max_steps": 100, "grad_accum": 1, "global_batch_size": None, "max_tokens": None, **trainer}
    return OmegaConf.create(
        {"recipe_name": "t", "data": {"train": train, "seq_len": 64, "batch_size": 2}, "trainer": t}
    )


# ----------------------------------------------------------------------------------------- dataset sizes
def test_dataset_tokens_come_from_summary_json(tmp_path):
    ds = write_dataset(tmp_path / "a", [10, 20, 30, 40, 50])  # shards of 3 + 2 documents
    assert dataset_size({"path": str(ds)}).tokens == 150
    assert dataset_size({"path": str(ds)}).docs == 5
    first = shard_paths(ds)[0]
    assert dataset_size({"path": first}).tokens == 60  # one shard: its line of the folder's summary
    assert dataset_size({"path": str(ds), "tokens": 7}).tokens == 7  # given sizes win


def test_dataset_tokens_unknown_without_summary(tmp_path):
    bare = write_dataset(tmp_path / "bare", [10, 20], summary=False)
    assert dataset_size({"path": str(bare)}).tokens is None
    assert dataset_size({"path": shard_paths(bare)[0]}).tokens is None  # a single .tar, no summary
    assert dataset_size({"path": "https://host/train-{000..009}.tar"}).tokens is None
    assert dataset_size({"path": "https://host/train-{000..009}.tar", "tokens": 1e9}).tokens == 1_000_000_000


# ------------------------------------------------------------------------------------------ rounds
def test_rounds_set_budget_steps_and_shares(tmp_path):
    a = write_dataset(tmp_path / "a", [40] * 10)  # 400 tokens, short documents
    b = write_dataset(tmp_path / "b", [200] * 4)  # 800 tokens, long documents
    plan = plan_phase(cfg_of([{"path": str(a), "rounds": 2.0}, {"path": str(b), "rounds": 0.5}]), world_size=1)
    assert plan.style == "rounds" and plan.budget_source == "rounds"
    assert plan.budget_tokens == 2 * 400 + 0.5 * 800 == 1200
    assert plan.tokens_per_step == 2 * 64 and plan.max_steps == math.ceil(1200 / 128) == 10
    assert [d.planned_tokens for d in plan.datasets] == [800, 400]
    assert [round(d.token_share, 6) for d in plan.datasets] == [round(2 / 3, 6), round(1 / 3, 6)]
    # Documents are drawn, not tokens: rounds x documents = 20 : 2.
    assert plan.sampling_weights() == pytest.approx([20 / 22, 2 / 22])
    assert [d.name for d in plan.datasets] == ["a", "b"]


def test_mixture_with_planned_weights_gives_each_dataset_its_rounds(tmp_path):
    """Drawing documents with the plan's weights yields the planned token shares (here 50/50), which
    weights proportional to rounds x tokens would not (short documents would get a sixth of the tokens)."""
    a = write_dataset(tmp_path / "a", [40] * 10)
    b = write_dataset(tmp_path / "b", [200] * 4)
    plan = plan_phase(cfg_of([{"path": str(a), "rounds": 1.0}, {"path": str(b), "rounds": 0.5}]))
    assert [d.token_share for d in plan.datasets] == pytest.approx([0.5, 0.5])
    data_cfg = SimpleNamespace(
        train=[SimpleNamespace(path=str(p)) for p in (a, b)], eval=None, eval_fraction=0.0, allow_commands=False,
        max_bad_docs=0, shuffle_buffer=0, seq_len=200, batch_size=1, overflow="next_row",
    )  # fmt: skip
    planner = build_train_data(data_cfg, 0, None, plan.sampling_weights(), log=None, prefetch=False).planner
    tokens = [0, 0]
    for _ in range(800):
        for (dataset, _shard, _entry), start, stop in planner.next_row([])[0]:
            tokens[dataset] += stop - start
    share_a = tokens[0] / sum(tokens)
    assert share_a == pytest.approx(0.5, abs=0.06)


def test_rounds_below_one_and_given_sizes(tmp_path):
    train = [{"name": "remote", "path": "https://h/x-{0..9}.tar", "rounds": 0.25, "tokens": 4096, "docs": 8}]
    plan = plan_phase(cfg_of(train))
    assert plan.budget_tokens == 1024 and plan.max_steps == 8
    assert plan.datasets[0].name == "remote" and plan.datasets[0].rounds == 0.25


def test_rounds_need_sizes(tmp_path):
    bare = write_dataset(tmp_path / "bare", [10], summary=False)
    with pytest.raises(PlanError, match=r"data.train\[0\] \(bare\) gives rounds.*add tokens: N"):
        plan_phase(cfg_of([{"path": str(bare), "rounds": 1}]))


def test_rounds_and_max_tokens_conflict(tmp_path):
    a = write_dataset(tmp_path / "a", [10])
    with pytest.raises(PlanError, match="trainer.max_tokens=500 is set but data.train gives rounds"):
        plan_phase(cfg_of([{"path": str(a), "rounds": 1}], max_tokens=500))


# ------------------------------------------------------------------------------------------ weights
def test_weights_with_token_budget(tmp_path):
    a = write_dataset(tmp_path / "a", [40] * 10)
    b = write_dataset(tmp_path / "b", [200] * 4)
    plan = plan_phase(cfg_of([{"path": str(a), "weight": 3}, {"path": str(b)}], max_tokens=1000))
    assert plan.style == "weight" and plan.budget_source == "trainer.max_tokens"
    assert plan.sampling_weights() == pytest.approx([0.75, 0.25])  # a missing weight is 1, as in training
    assert plan.max_steps == math.ceil(1000 / 128) == 8
    # Token shares follow mean document lengths: 0.75 x 40 : 0.25 x 200 = 30 : 50.
    assert [d.token_share for d in plan.datasets] == pytest.approx([30 / 80, 50 / 80])
    assert plan.datasets[0].rounds == pytest.approx(1000 * 30 / 80 / 400)


def test_weights_without_budget_keep_max_steps():
    plan = plan_phase(cfg_of([{"path": "/nowhere/a", "weight": 1}], max_steps=37))
    assert plan.max_steps == 37 and plan.budget_source == "trainer.max_steps"
    assert plan.budget_tokens == 37 * 128
    assert plan.datasets[0].tokens is None and plan.datasets[0].rounds is None


def test_budget_rounds_up_to_whole_steps():
    assert plan_phase(cfg_of([{"path": "/x"}], max_tokens=128 * 5)).max_steps == 5
    assert plan_phase(cfg_of([{"path": "/x"}], max_tokens=128 * 5 + 1)).max_steps == 6


def test_token_counts_in_any_notation():
    assert plan_phase(cfg_of([{"path": "/x"}], max_tokens="1.28e3")).budget_tokens == 1280
    assert plan_phase(cfg_of([{"path": "/x", "rounds": 1, "tokens": 2.56e3}])).max_steps == 20
    with pytest.raises(PlanError, match="trainer.max_tokens='lots' is not a number"):
        plan_phase(cfg_of([{"path": "/x"}], max_tokens="lots"))
    with pytest.raises(PlanError, match="tokens=-5 must be a finite number >= 0"):
        plan_phase(cfg_of([{"path": "/x", "rounds": 1, "tokens": -5}]))


# ---------------------------------------------------------------------------------------- batch size
def test_grad_accum_from_global_batch():
    cfg = cfg_of([{"path": "/x"}], global_batch_size=768)
    cfg.data.batch_size = 1
    assert (plan_phase(cfg, 1).grad_accum, plan_phase(cfg, 8).grad_accum) == (768, 96)
    assert plan_phase(cfg, 8).global_batch_size == 768
    plain = cfg_of([{"path": "/x"}], grad_accum=3)  # no global_batch_size: it follows the world size
    assert (plan_phase(plain, 4).global_batch_size, plan_phase(plain, 4).grad_accum) == (2 * 3 * 4, 3)


@pytest.mark.parametrize(("global_batch", "world"), [(9, 1), (4, 4), (12, 4)])
def test_global_batch_must_split_evenly(global_batch, world):
    cfg = cfg_of([{"path": "/x"}], global_batch_size=global_batch)  # data.batch_size 2
    with pytest.raises(PlanError, match=rf"trainer.global_batch_size={global_batch} is not a whole multiple"):
        plan_phase(cfg, world)


def test_global_batch_config_without_new_keys():
    """A config that leaves out global_batch_size/max_tokens gets them from the schema (null): the plan
    follows grad_accum and max_steps."""
    cfg = check_schema(OmegaConf.create({"data": {"train": [{"path": "/x"}], "seq_len": 8, "batch_size": 1},
                                         "trainer": {"max_steps": 5, "grad_accum": 2}}))  # fmt: skip
    plan = plan_phase(cfg, 1)
    assert (plan.global_batch_size, plan.max_steps, plan.name) == (2, 5, "")


# ------------------------------------------------------------------------------------------- errors
def test_mixed_styles_are_refused():
    with pytest.raises(PlanError, match=r"mixes styles: data.train\[1\] \(b\) gives rounds but data.train\[0\] \(a\)"):
        plan_phase(cfg_of([{"path": "/d/a", "weight": 1}, {"path": "/d/b", "rounds": 1, "tokens": 5}]))
    with pytest.raises(PlanError, match="gives both weight and rounds"):
        plan_phase(cfg_of([{"path": "/d/a", "weight": 1, "rounds": 1, "tokens": 5}]))


def test_misspelt_key_is_refused():
    with pytest.raises(PlanError, match=r"data.train\[0\] \(a\): unknown key\(s\) round"):
        plan_phase(cfg_of([{"path": "/d/a", "round": 2}]))


@pytest.mark.parametrize("bad", [-1, "lots", float("nan")])
def test_bad_numbers_are_refused(bad):
    with pytest.raises(PlanError, match="weight"):
        plan_phase(cfg_of([{"path": "/d/a", "weight": bad}]))


def test_all_zero_weights_are_refused():
    with pytest.raises(PlanError, match="add up to 0"):
        plan_phase(cfg_of([{"path": "/d/a", "weight": 0}]))


# ------------------------------------------------------------------------------------------- format
def test_human_units():
    assert [human(6_291_456), human(280e9), human(1e12), human(8192), human(37), human(None)] == [
        "6.3M", "280.0B", "1.0T", "8.2K", "37", "?",
    ]  # fmt: skip


def test_format_shows_the_plan(tmp_path):
    a = write_dataset(tmp_path / "cot", [40] * 10)
    text = plan_phase(cfg_of([{"path": str(a), "rounds": 3.0}], global_batch_size=4), world_size=2).format()
    assert "data.train by rounds" in text
    assert "cot" in text and "400" in text and "100.0%" in text and "1.2K" in text
    assert "global batch 4 rows x 64 tokens = 256 tokens/step (data.batch_size 2 x grad_accum 1 x 2 processes)" in text
    assert "5 steps, budget 1.2K tokens (from rounds)" in text


# ------------------------------------------------------------------------------------------ recipes
PRETRAIN = sorted(r for r in available_recipes() if r.startswith("pretrain/"))
BIG = [r for r in PRETRAIN if not r.startswith("pretrain/tiny_")]
PAPER = {  # recipe: (global batch, seq_len, budget, steps, schedule, init_from phase)
    "pretrain/phase1_warmup": (768, 8192, 280e9, 44_505, "constant", None),
    "pretrain/phase2_constant": (768, 8192, 720e9, 114_441, "constant", "pretrain_phase1_warmup"),
    "pretrain/phase3_longctx": (768, 16384, 750e9, 59_605, "constant", "pretrain_phase2_constant"),
    "pretrain/phase4_anneal": (768, 16384, 40e9, 3_179, "cosine", "pretrain_phase3_longctx"),
}


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An empty $YUE_DATA: the big recipes' datasets do not exist, so nothing is read."""
    monkeypatch.setenv("YUE_DATA", str(tmp_path / "data"))
    return tmp_path


def test_pretrain_recipes_are_there():
    assert set(PAPER) <= set(PRETRAIN)
    assert {
        "pretrain/reanneal",
        "pretrain/s2_pretrain",
        "pretrain/tiny_p1",
        "pretrain/tiny_p2",
        "pretrain/tiny_p3",
    } <= set(PRETRAIN)


@pytest.mark.parametrize("recipe", PRETRAIN)
def test_pretrain_recipe_composes_and_plans(recipe, no_data):
    cfg = compose_config([f"recipe={recipe}", f"trainer.runs_root={no_data / 'runs'}"])
    stem = recipe.split("/", 1)[1]
    assert cfg.recipe_name == f"pretrain_{stem}"
    assert cfg.trainer.run_dir == str(no_data / "runs" / f"pretrain_{stem}")
    assert not cfg.lora.enabled and cfg.model.path is None  # full training; random init or init_from
    assert list(cfg.optim.betas) == [0.9, 0.95] and cfg.optim.weight_decay == 0.1
    raw = OmegaConf.load(find_recipes()[recipe].path)  # the strategy is left to the launcher/user
    assert "distributed" not in raw and not any("distributed" in str(d) for d in raw.defaults)
    assert cfg.distributed.strategy == "single"
    prepare_synthetic_datasets(cfg)  # the tiny chain's generated data; nothing for the big recipes
    plan = plan_phase(cfg, world_size=1)
    assert plan.max_steps >= 1 and plan.format()
    if recipe in BIG:
        assert str(no_data / "data") in plan.datasets[0].path  # $YUE_DATA placeholders
        assert cfg.optim.lr == 3e-4


@pytest.mark.parametrize("recipe", sorted(PAPER))
@pytest.mark.parametrize("world", [1, 8])
def test_paper_numbers(recipe, world, no_data):
    batch, seq_len, budget, steps, schedule, previous = PAPER[recipe]
    root = no_data / "runs"
    cfg = compose_config([f"recipe={recipe}", f"trainer.runs_root={root}"])
    plan = plan_phase(cfg, world_size=world)
    assert (plan.global_batch_size, plan.seq_len, plan.budget_tokens, plan.max_steps) == (batch, seq_len, budget, steps)
    assert plan.grad_accum * world * cfg.data.batch_size == 768
    assert cfg.optim.lr == 3e-4 and cfg.optim.schedule == schedule
    assert cfg.trainer.init_from == (None if previous is None else str(root / previous))
    names = {d.name for d in plan.datasets}
    icl = {n for n in names if n.startswith("icl_")}
    assert bool(icl) == (recipe == "pretrain/phase4_anneal")  # ICL only in the anneal
    if recipe == "pretrain/phase1_warmup":
        assert plan.tokens_per_step == 6_291_456 and human(plan.tokens_per_step) == "6.3M"
        assert cfg.optim.warmup_steps > 0 and not any("multi" in n for n in names)  # English + Chinese
    else:
        assert cfg.optim.warmup_steps == 0
    if recipe in ("pretrain/phase3_longctx", "pretrain/phase4_anneal"):
        assert "uncond_mix" not in names
    if recipe == "pretrain/phase4_anneal":
        assert not names & {"speech", "uncond_dual", "uncond_mix"}
        assert cfg.optim.min_lr_ratio == pytest.approx(0.1)  # 3e-4 -> 3e-5
        by = {d.name: d.sampling_weight for d in plan.datasets}
        cot = sum(w for n, w in by.items() if n.startswith("cot_"))
        assert cot == pytest.approx(2 * sum(by[n] for n in icl))  # CoT:ICL = 2:1


def test_phase1_as_official_rounds(no_data):
    """The same phase written as an N_ROUND list: two passes over 140B tokens give the same 280B / 44,505 steps."""
    cfg = compose_config(
        ["recipe=pretrain/phase1_warmup", "trainer.max_tokens=null", "data.train=[{path: /d/cot, rounds: 2, tokens: 140000000000}]"]
    )  # fmt: skip
    plan = plan_phase(cfg, 1)
    assert (plan.budget_tokens, plan.max_steps, plan.budget_source) == (280_000_000_000, 44_505, "rounds")


def test_tiny_chain_plans(tmp_path):
    root = tmp_path / "runs"
    plans = {}
    for phase in ("tiny_p1", "tiny_p2", "tiny_p3"):
        cfg = compose_config([f"recipe=pretrain/{phase}", f"trainer.runs_root={root}"])
        assert prepare_synthetic_datasets(cfg)
        plans[phase] = plan_phase(cfg, 1)
    p1, p2, p3 = plans["tiny_p1"], plans["tiny_p2"], plans["tiny_p3"]
    for p in (p1, p2, p3):
        assert (p.global_batch_size, p.grad_accum, p.seq_len) == (4, 4, 256)
        assert 4 <= p.max_steps <= 6
    assert p1.budget_source == p3.budget_source == "trainer.max_tokens" and p2.budget_source == "rounds"
    a, b = (dataset_size({"path": str(root / "pretrain_tiny_corpus" / n)}).tokens for n in ("cot_a", "cot_b"))
    assert p2.budget_tokens == round(0.25 * a + 0.4 * b)
    assert [d.name for d in p3.datasets] == ["cot_a", "cot_b", "icl"]
    assert all(d.name != "icl" for d in (*p1.datasets, *p2.datasets))
