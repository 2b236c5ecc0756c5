"""The run summary's ``tokens_explained`` line: the rows' tokens = tokens_seen + padding + documents' last
tokens, each number counted again here from the planner's rows of the shared trained run; and the padding
count of one collated batch, by hand."""

from __future__ import annotations

import json

import numpy as np
import torch
from omegaconf import OmegaConf

from tests.training.conftest import SUMMARY, TRAINED_STEPS
from yue_train.data.packing import IGNORE_INDEX, PackedDoc, collate
from yue_train.data.train_data import build_train_data
from yue_train.training.plan import plan_phase, tokens_explained


def test_the_summary_says_where_the_row_tokens_went(trained, tmp_path):
    summary = json.loads((trained.parent / SUMMARY).read_text())
    ckpt = trained / "checkpoints" / "latest"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    cfg = OmegaConf.load(ckpt / "config.yaml")
    plan = plan_phase(cfg)
    # The rows the run trained on, replayed from its data settings: pieces (document, start, stop) and padding.
    data = build_train_data(
        cfg.data, int(cfg.trainer.seed), None, plan.sampling_weights(), grad_accum=plan.grad_accum, log=None,
        index_dir=tmp_path, prefetch=False,
    )  # fmt: skip
    rows = [data.planner.next_row([]) for _ in range(TRAINED_STEPS * plan.global_batch_size)]
    padding = sum(pad for _, pad in rows)
    ends = sum(b == data.planner.n_tokens(*ref) for pieces, _ in rows for ref, _a, b in pieces)
    row_tokens = TRAINED_STEPS * plan.tokens_per_step
    assert padding > 0 and ends > 0
    assert (state["row_tokens"], state["padding_tokens"]) == (row_tokens, padding)
    assert summary["tokens_seen"] + padding + ends == row_tokens
    line = summary["tokens_explained"]
    assert line == tokens_explained(plan, TRAINED_STEPS, row_tokens, summary["tokens_seen"], padding)
    assert line.startswith(f"tokens_seen {summary['tokens_seen']:,} = {row_tokens:,} tokens in {TRAINED_STEPS} steps")
    assert f" - {padding:,} padding at row ends - {ends:,} documents' last tokens" in line


def test_a_batch_counts_row_end_padding_and_fillers_of_bad_documents():
    """A 10-token row: a 5-token document, 3 filler tokens in place of a bad one, 2 of padding at the end."""
    ids = np.arange(1, 6)
    labels = np.append(ids[1:], IGNORE_INDEX)  # the last token predicts nothing
    batch = collate([([PackedDoc(ids, labels, np.zeros(5, np.int64)), PackedDoc.padding(3)], 2)], 10)
    labelled = int((batch.labels != IGNORE_INDEX).sum())
    assert (batch.n_padding, labelled) == (5, 4)  # 10 = 4 trained + 5 padding + 1 document end
    assert batch.to(torch.device("cpu")).n_padding == 5
