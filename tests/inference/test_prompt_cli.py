import json

import numpy as np
import pytest

from inference.cli import main as infer_main
from tests.conftest import fixture_file
from yue_train.format import sequences as seq


def _run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = infer_main(["prompt", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prompt_ids_for_the_official_example(capsys, real_tokenizer, real_tokenizer_path):
    eg = fixture_file("yue", "prompt_egs")
    code, out, _ = _run(
        capsys,
        "--genre-txt",
        eg / "genre.txt",
        "--lyrics-txt",
        eg / "lyrics.txt",
        "--tokenizer",
        real_tokenizer_path,
        "--ids",
    )
    assert code == 0
    got = json.loads(out)
    sections = seq.split_lyrics((eg / "lyrics.txt").read_text())
    genres = (eg / "genre.txt").read_text().strip()
    assert got["n_sections"] == len(sections) == 6
    header = f"Generate music from the given lyrics segment by segment.\n[Genre] {genres}\n" + "\n".join(sections)
    tok = real_tokenizer
    assert got["first"] == tok.encode(header) + tok.encode("[start_of_segment]") + tok.encode(sections[0]) + [
        32001,
        32016,
    ]
    assert len(got["next"]) == 5
    assert got["next"][0] == tok.encode("[end_of_segment]") + tok.encode("[start_of_segment]") + tok.encode(
        sections[1]
    ) + [32001, 32016]


def test_prompt_with_dual_codes_reference(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.integers(0, 1024, (1, 1500)))
    np.save(tmp_path / "i.npy", rng.integers(0, 1024, (1, 1500)))
    (tmp_path / "g.txt").write_text("pop female\n")
    (tmp_path / "l.txt").write_text("[verse]\nla la\n\n[chorus]\nna na\n")
    args = [
        "--genre-txt",
        tmp_path / "g.txt",
        "--lyrics-txt",
        tmp_path / "l.txt",
        "--ref-vocal-codes",
        tmp_path / "v.npy",
        "--ref-inst-codes",
        tmp_path / "i.npy",
        "--ref-start",
        2,
        "--ref-end",
        12,
    ]
    code, out, _ = _run(capsys, *args, "--ids")
    assert code == 0
    first = json.loads(out)["first"]
    assert sum(45334 <= t < 46358 for t in first) == 1000  # 10 s of dual reference at 100 tokens/s
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "<reference dual 1,000 tok = 10.0 s>" in out and "2 sections" in out


@pytest.mark.parametrize("lyrics,genre,extra,message", [
    ("no labels here", "pop", [], "no [label] section"),
    ("[verse]\nx", "   \n", [], "genre file"),
    ("[verse]\nx", "pop", ["--ref-codes", "REF", "--ref-end", "99"], "reference is 30.00 s long"),
    ("[verse]\nx", "pop", ["--ref-vocal-codes", "REF"], "needs both"),
])  # fmt: skip
def test_prompt_bad_input(tmp_path, capsys, lyrics, genre, extra, message):
    np.save(tmp_path / "ref.npy", np.zeros((1, 1500), dtype=np.int64))
    (tmp_path / "g.txt").write_text(genre)
    (tmp_path / "l.txt").write_text(lyrics)
    extra = [str(tmp_path / "ref.npy") if a == "REF" else a for a in extra]
    code, _, err = _run(capsys, "--genre-txt", tmp_path / "g.txt", "--lyrics-txt", tmp_path / "l.txt", *extra)
    assert code == 2
    assert message in err and err.startswith("yue-infer prompt: error:")


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_prompt_without_tokenizer_says_it_uses_the_stand_in(capsys, tmp_path, synth_tokenizer, with_tokenizer):
    from yue_train.tokenizer import STAND_IN_WARNING, synthetic_tokenizer_path

    (tmp_path / "genre.txt").write_text("pop female bright")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla la la\n")
    extra = ["--tokenizer", synthetic_tokenizer_path()] if with_tokenizer else []
    code, _, err = _run(capsys, "--genre-txt", tmp_path / "genre.txt", "--lyrics-txt", tmp_path / "lyrics.txt", *extra)
    assert code == 0
    warned = [line for line in err.splitlines() if STAND_IN_WARNING in line]
    assert warned == ([] if with_tokenizer else [f"yue-infer prompt: {STAND_IN_WARNING}"])
