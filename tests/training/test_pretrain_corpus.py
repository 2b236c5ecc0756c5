"""Generated CoT/ICL shard folders for the tiny pre-training chain (yue_train.data.pretrain_corpus)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from yue_train.data.pretrain_corpus import (
    SyntheticDataError,
    prepare_synthetic_datasets,
    synthetic_spec,
    write_synthetic_shards,
)
from yue_train.data.shards import SUMMARY_NAME, iter_documents
from yue_train.format.roles import PROMPT_ROLES, ROLE_NAMES
from yue_train.training.plan import dataset_size

PROMPT_NAMES = {ROLE_NAMES[int(r)] for r in PROMPT_ROLES}


def _roles_in(folder) -> set[str]:
    return {ROLE_NAMES[int(r)] for doc in iter_documents(folder) for r in set(doc.roles.tolist())}


def test_icl_dataset_has_every_prompt_role_and_cot_none(tmp_path):
    cot = write_synthetic_shards(tmp_path / "cot", synthetic_spec({"kind": "cot", "n_songs": 6, "seed": 1}, "t"))
    icl = write_synthetic_shards(tmp_path / "icl", synthetic_spec({"kind": "icl", "n_songs": 8, "seed": 2}, "t"))
    assert not _roles_in(cot) & PROMPT_NAMES
    assert _roles_in(icl) >= PROMPT_NAMES
    modes = [doc.mode for doc in iter_documents(icl)]
    assert modes[:4] == ["icl-dual", "icl-vocal", "icl-inst", "icl-mixture"]
    summary = json.loads((icl / SUMMARY_NAME).read_text())
    assert summary["documents_written"] == 8
    assert (
        dataset_size({"path": str(icl)}).tokens == summary["tokens_total"] == sum(len(d) for d in iter_documents(icl))
    )


def test_single_prompt_mode_and_distinct_ids(tmp_path):
    spec = synthetic_spec({"kind": "icl", "n_songs": 3, "seed": 5, "icl_prompt": "mixture"}, "t")
    out = write_synthetic_shards(tmp_path / "mix", spec)
    assert {d.mode for d in iter_documents(out)} == {"icl-mixture"}
    assert _roles_in(out) & PROMPT_NAMES == {"prompt_mix"}
    other = write_synthetic_shards(tmp_path / "cot", synthetic_spec({"kind": "cot", "n_songs": 3, "seed": 6}, "t"))
    assert not {d.id for d in iter_documents(out)} & {d.id for d in iter_documents(other)}


def test_written_once_and_rebuilt_when_the_spec_changes(tmp_path):
    spec = synthetic_spec({"kind": "cot", "n_songs": 4, "seed": 1}, "t")
    out = write_synthetic_shards(tmp_path / "cot", spec)
    stamp = (out / SUMMARY_NAME).stat().st_mtime_ns
    write_synthetic_shards(out, spec)
    assert (out / SUMMARY_NAME).stat().st_mtime_ns == stamp  # finished: left alone
    write_synthetic_shards(out, synthetic_spec({"kind": "cot", "n_songs": 2, "seed": 1}, "t"))
    assert len(list(iter_documents(out))) == 2
    (out / SUMMARY_NAME).unlink()  # an interrupted write: rebuilt
    write_synthetic_shards(out, spec)
    assert len(list(iter_documents(out))) == 4


def test_hook_writes_entries_with_a_synthetic_block(tmp_path):
    cfg = OmegaConf.create(
        {"data": {"train": [{"path": str(tmp_path / "gen"), "weight": 1, "synthetic": {"kind": "cot", "n_songs": 2}},
                            {"path": str(tmp_path / "mine"), "weight": 1}],
                  "eval": None}}
    )  # fmt: skip
    assert prepare_synthetic_datasets(cfg) == [tmp_path / "gen"]
    assert (tmp_path / "gen" / SUMMARY_NAME).is_file() and not (tmp_path / "mine").exists()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"kind": "speech"}, "kind='speech'"),
        ({"kind": "icl", "icl_prompt": "drums"}, "icl_prompt='drums'"),
        ({"seconds": [1.0, 2.0]}, "seconds"),
        ({"n_songs": 0}, "n_songs"),
        ({"songs": 3}, "unknown key"),
    ],
)
def test_bad_blocks_are_refused(block, message):
    with pytest.raises(SyntheticDataError, match=message):
        synthetic_spec(block, "data.train[0]")
