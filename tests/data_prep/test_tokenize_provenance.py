"""`yue-prep tokenize` records what its shards are, and says so when it falls back to the stand-in tokenizer."""

from __future__ import annotations

import pytest

from data_prep.cli import main as prep_main
from yue_train.data.shards import read_summary
from yue_train.format.provenance import YUE_TOKENIZER_SHA256
from yue_train.tokenizer import load_tokenizer


def _tokenize(manifest, out, *extra: str) -> int:
    args = ["tokenize", "--manifest", str(manifest), "--root", str(manifest.parent), "--out", str(out)]
    return prep_main([*args, "--no-progress", *extra])


@pytest.mark.parametrize("mode,warned", [("cot", True), ("icl", True), ("stage2", False)])
def test_tokenize_without_tokenizer_warns_once_for_text(tmp_path, synthetic_corpus, capsys, mode, warned):
    assert _tokenize(synthetic_corpus, tmp_path / mode, "--mode", mode) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [x for x in err if "stand-in" in x]
    if not warned:  # stage-2 documents hold no text
        assert lines == []
        return
    assert len(lines) == 1
    assert (
        lines[0].startswith("yue-prep tokenize: warning: no --tokenizer") and "--tokenizer tokenizer.model" in lines[0]
    )


def test_summary_records_mode_stage_and_tokenizer(tmp_path, synthetic_corpus, real_tokenizer_path, capsys):
    assert _tokenize(synthetic_corpus, tmp_path / "cot", "--tokenizer", str(real_tokenizer_path)) == 0
    assert "stand-in" not in capsys.readouterr().err
    prov = read_summary(tmp_path / "cot")["provenance"]
    assert prov["modes"] == ["cot"] and prov["stage"] == 1
    assert prov["tokenizer"]["sha256"] == YUE_TOKENIZER_SHA256 == load_tokenizer(real_tokenizer_path).fingerprint
    assert prov["tokenizer"]["synthetic"] is False and prov["vocab_size"] == 83_738
    assert 32_000 <= prov["max_token_id"] < 83_968

    assert _tokenize(synthetic_corpus, tmp_path / "icl", "--mode", "icl", "--icl-prompt", "vocal") == 0
    prov = read_summary(tmp_path / "icl")["provenance"]
    assert prov["modes"] == ["icl-vocal"] and prov["stage"] == 1 and prov["tokenizer"]["synthetic"] is True

    assert _tokenize(synthetic_corpus, tmp_path / "s2", "--mode", "stage2") == 0
    prov = read_summary(tmp_path / "s2")["provenance"]
    assert prov["modes"] == ["stage2"] and prov["stage"] == 2 and prov["tokenizer"] is None
