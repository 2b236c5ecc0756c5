"""`yue-infer generate` against the models' provenance: stage-1 gets the tokenizer it was trained with, and
each model is the stage it is passed as; all checked before any weights load."""

from __future__ import annotations

import pytest
import torch

from inference.cli import main as infer_main
from tests.tiny_models import tiny_llama
from yue_train.format.provenance import Provenance, TokenizerId, write_provenance
from yue_train.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def models(tmp_path_factory, real_tokenizer_path):
    """Tiny models with records: stage 1 trained on the stand-in / on YuE's tokenizer, stage 2, no record."""
    root = tmp_path_factory.mktemp("prov_models")
    synthetic = TokenizerId.of(load_tokenizer(None))
    real = TokenizerId.of(load_tokenizer(real_tokenizer_path))
    records = {
        "s1_synthetic": Provenance(modes=["cot"], stage=1, tokenizer=synthetic),
        "s1_real": Provenance(modes=["cot"], stage=1, tokenizer=real),
        "s2": Provenance(modes=["stage2"], stage=2),
        "plain": None,
    }
    for n, (name, prov) in enumerate(records.items()):
        tiny_llama(seed=n, dtype=torch.float32).save_pretrained(root / name)
        if prov is not None:
            write_provenance(root / name, prov)
    return root


def _generate(tmp_path, models, s1: str, s2: str = "s2", *extra: str) -> list[str]:
    (tmp_path / "genre.txt").write_text("pop female bright")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla la\n")
    return [
        "generate", "--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt"),
        "--stage1-model", str(models / s1), "--stage2-model", str(models / s2), "--out", str(tmp_path / "out"),
        "--max-new-tokens", "12", "--min-new-tokens", "10", "--no-progress", "--device", "cpu", *extra,
    ]  # fmt: skip


def _error(capsys) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("yue-infer generate: error:")]
    assert len(err) == 1, err
    return err[0]


def test_a_tokenizer_other_than_the_models_is_refused(tmp_path, models, real_tokenizer_path, capsys):
    args = _generate(tmp_path, models, "s1_synthetic", "s2", "--tokenizer", str(real_tokenizer_path))
    assert infer_main(args) == 2
    line = _error(capsys)
    assert f"--tokenizer {real_tokenizer_path} is YuE's tokenizer.model" in line
    assert "not the generated stand-in tokenizer that --stage1-model" in line and "--allow-mismatch" in line
    assert not (tmp_path / "out").exists()


def test_no_tokenizer_for_a_model_trained_on_the_real_one_is_refused(tmp_path, models, capsys):
    assert infer_main(_generate(tmp_path, models, "s1_real")) == 2
    line = _error(capsys)
    assert "was trained with YuE's tokenizer.model" in line and "no --tokenizer was given" in line
    assert not (tmp_path / "out").exists()


def test_models_passed_as_the_wrong_stage_are_refused(tmp_path, models, capsys):
    assert infer_main(_generate(tmp_path, models, "s2", "s1_synthetic")) == 2
    assert "--stage1-model" in (line := _error(capsys)) and "is a stage-2 model" in line
    assert "pass it as --stage2-model" in line


def test_allow_mismatch_generates_with_a_warning(tmp_path, models, real_tokenizer_path, capsys):
    args = _generate(tmp_path, models, "s1_real", "s2", "--allow-mismatch", "--n-sections", "1")
    assert infer_main(args) == 0
    err = capsys.readouterr().err
    assert "warning (--allow-mismatch): --stage1-model" in err and (tmp_path / "out" / "report.json").is_file()


def test_matching_or_unrecorded_models_generate(tmp_path, models, real_tokenizer_path, capsys):
    args = _generate(tmp_path, models, "s1_real", "s2", "--tokenizer", str(real_tokenizer_path), "--n-sections", "1")
    assert infer_main(args) == 0
    assert "warning" not in capsys.readouterr().err
    # no record and no --tokenizer: generation runs and says once that the stand-in is used
    (tmp_path / "plain").mkdir()
    args = _generate(tmp_path / "plain", models, "plain", "plain", "--n-sections", "1")
    assert infer_main(args) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "stand-in" in x]
    assert len(lines) == 1 and lines[0].startswith("yue-infer generate: warning: no --tokenizer")
