"""The Python API (yue_train.api): the README's example run as written, generation from strings, training
and shards from Python, and the lazy top-level names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from tests.tiny_models import tiny_llama, wrong_vocab_llama_config

README = REPO / "README.md"
LYRICS = "[verse]\nla la\n\n[chorus]\nna na\n"


def readme_python(heading: str) -> str:
    """The ```python blocks of the README section under ``## heading``, joined."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"no ```python block under '## {heading}'"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    tiny_llama(seed=0, dtype=torch.float32).save_pretrained(root / "s1")
    tiny_llama(seed=1, dtype=torch.float32).save_pretrained(root / "s2")
    return {"s1": str(root / "s1"), "s2": str(root / "s2")}


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory) -> Path:
    from tests.codec.conftest import tiny_reference, write_official_tree
    from yue_train.codec.convert_files import convert_official

    tree = write_official_tree(tmp_path_factory.mktemp("official"), tiny_reference(0))
    out = tmp_path_factory.mktemp("converted") / "codec"
    convert_official(tree["ckpt"], out, vocal_decoder=tree["vocal"], inst_decoder=tree["inst"])
    return out


@pytest.fixture(scope="module")
def yue(models):
    from yue_train import YuE

    return YuE.from_pretrained(models["s1"], models["s2"], device="cpu")


def test_import_is_cheap_and_api_names_load_lazily():
    code = (
        "import sys, yue_train; assert 'torch' not in sys.modules and 'yue_train.api' not in sys.modules; "
        "from yue_train import YuE, train, build_shards; import yue_train.api as a; "
        "assert YuE is a.YuE and train is a.train and build_shards is a.build_shards; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert out.stdout.strip() == "ok", out.stderr
    import yue_train

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        yue_train.nope  # noqa: B018


@pytest.mark.slow
def test_readme_python_api_runs(tmp_path, monkeypatch, models, codec_dir):
    """The README's Python API block, exec'd as written with tiny models, a tiny codec and a tiny recipe."""
    from yue_train.tokenizer.synthetic import synthetic_tokenizer_path

    monkeypatch.chdir(tmp_path)
    names = {
        "STAGE1": models["s1"],
        "STAGE2": models["s2"],
        "CODEC": str(codec_dir),
        "TOKENIZER": str(synthetic_tokenizer_path()),
        "RECIPE": "tiny_lora",
    }
    exec(compile(readme_python("Python API"), str(README), "exec"), names)  # noqa: S102
    songs, song, wave, rate = names["songs"], names["song"], names["wave"], names["rate"]
    assert len(songs) == 2 and [s.seed for s in songs] == [42, 43]
    n = song.stage1_vocal.shape[1]
    assert n > 0 and song.stage2_vocal.shape == song.stage2_inst.shape == (8, n)
    assert np.array_equal(song.stage2_vocal[0], song.stage1_vocal[0])  # stage 2 keeps codebook 0
    assert rate == 44_100 and wave.ndim == 1 and abs(len(wave) - n / 50 * rate) <= rate * 0.05
    assert {"vocal_16k", "inst_16k", "mix_16k", "final"} <= set(song.audio)
    summary = names["summary"]
    assert summary["documents_written"] == 2 and summary["records_rejected"] == 0
    assert (tmp_path / "data" / "cot" / "summary.json").is_file()
    run_dir = names["run_dir"]
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(m.get("step", 0) for m in metrics) == 10
    assert not list(tmp_path.glob("*.txt"))  # no genre or lyrics files were written


@pytest.mark.slow
def test_generate_matches_the_cli(tmp_path, models, yue):
    """Strings in memory and `yue-infer generate` on files give the same codes for the same seed."""
    from inference.cli import main as infer_main

    (song,) = yue.generate(genres="pop female", lyrics=LYRICS, seed=7, max_new_tokens=24, min_new_tokens=20)
    (tmp_path / "g.txt").write_text("pop female")
    (tmp_path / "l.txt").write_text(LYRICS)
    args = ["generate", "--genre-txt", str(tmp_path / "g.txt"), "--lyrics-txt", str(tmp_path / "l.txt"),
            "--stage1-model", models["s1"], "--stage2-model", models["s2"], "--out", str(tmp_path / "out"),
            "--seed", "7", "--max-new-tokens", "24", "--min-new-tokens", "20", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert infer_main(args) == 0
    cli = tmp_path / "out" / "song00"
    assert np.array_equal(np.load(cli / "stage1_ids.npy"), song.stage1_ids)
    assert np.array_equal(np.load(cli / "stage2_vocal.npy"), song.stage2_vocal)
    assert np.array_equal(np.load(cli / "stage2_inst.npy"), song.stage2_inst)
    assert len(song.sections) == 2 and song.audio == {}
    with pytest.raises(ValueError, match="load YuE with a codec"):
        song.mix()


def test_generate_with_a_codes_reference(yue):
    from yue_train import Reference
    from yue_train.format import vocab

    rng = np.random.default_rng(0)
    vocal, inst = rng.integers(0, 1024, (1, 150)), rng.integers(0, 1024, (1, 150))
    (song,) = yue.generate(
        genres="pop", lyrics="[verse]\nla\n", reference=Reference(vocal=vocal, inst=inst, start=0, end=2),
        max_new_tokens=6, min_new_tokens=4, guidance_first=1.0,
    )  # fmt: skip
    ids = song.stage1_ids
    first_soa = int(np.flatnonzero(ids == vocab.SOA)[0])
    # the reference block: 2 s of interleaved vocal/inst codebook-0 ids
    assert np.array_equal(ids[first_soa + 2 : first_soa + 202][0::2], 45_334 + vocal[0, :100])
    assert song.stage1_vocal.shape[1] == song.stage2_vocal.shape[1] > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lyrics": "no sections here"}, "no \\[label\\] section"),
        ({"genres": "  "}, "genre text is empty"),
        ({"max_new_tokens": 20_000}, "exceeds the stage-1 model's 4,096-token window"),
        ({"reference": "mix"}, "audio needs a codec"),
        ({"reference": "both"}, "either mix .* or vocal and inst"),
        ({"reference": "half"}, "needs mix, or both vocal and inst"),
        ({"reference": "beyond"}, "reference is 1.00 s long"),
        ({"reference": "range"}, "code 1024 .* outside 0..1023"),
        ({"top_k": 5}, "unknown sampling option\\(s\\) top_k"),
    ],
)
def test_generate_bad_input_is_one_line(yue, kwargs, message):
    from yue_train import Reference

    codes = np.zeros((1, 50), np.int64)
    refs = {
        "mix": Reference(mix="song.wav"),
        "both": Reference(mix=codes, vocal=codes),
        "half": Reference(vocal=codes),
        "beyond": Reference(mix=codes, start=0, end=5),
        "range": Reference(mix=codes + 1024),
    }
    if "reference" in kwargs:
        kwargs = {"reference": refs[kwargs["reference"]]}
    args = {"genres": "pop", "lyrics": "[verse]\nla\n", "max_new_tokens": 4, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message) as err:
        yue.generate(**args)
    assert "\n" not in str(err.value)


def test_from_pretrained_checks_before_loading(tmp_path, models):
    from yue_train import YuE

    wrong_vocab_llama_config().save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match="stage-2 model .* needs at least 53,526"):
        YuE.from_pretrained(models["s1"], tmp_path / "small", device="cpu")
    with pytest.raises(ValueError, match="not a converted codec folder"):
        YuE.from_pretrained(models["s1"], models["s2"], codec=tmp_path, device="cpu")


def test_recipe_config_merges_python_values():
    from yue_train.api import recipe_config

    cfg = recipe_config(
        "tiny",
        {"optim.lr": 2e-4, "model.tokenizer": None},
        trainer={"max_steps": 3, "run_dir": Path("/tmp/a b's run"), "init_from": "1e-3"},
        data={"train": [{"path": "/data/x y", "weight": 2.0}]},
        lora="qkvo",
    )
    assert cfg.optim.lr == 2e-4 and cfg.trainer.max_steps == 3 and cfg.trainer.run_dir == "/tmp/a b's run"
    assert cfg.trainer.init_from == "1e-3" and cfg.model.tokenizer is None  # values stay what they are
    assert cfg.trainer.seed == recipe_config("tiny").trainer.seed  # a mapping merges: its other keys stay
    assert cfg.data.train[0].path == "/data/x y" and cfg.data.train[0].weight == 2.0 and len(cfg.data.train) == 1
    assert cfg.lora.r > 0  # the qkvo group was selected
    with pytest.raises(ValueError, match="trainer.max_stepz"):
        recipe_config("tiny", trainer={"max_stepz": 3})
    with pytest.raises(ValueError, match="trainer.max_steps"):
        recipe_config("tiny", {"trainer.max_steps": "many"})
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        recipe_config("nope")


@pytest.mark.slow
def test_train_returns_the_run_folder_and_resumes(tmp_path):
    from yue_train import train

    run = train("tiny", trainer={"max_steps": 2, "run_dir": str(tmp_path / "run")})
    assert run == tmp_path / "run" and (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "step-2").is_dir()
    # a second call with more steps resumes from step 2 instead of starting again
    assert train("tiny", trainer={"max_steps": 3, "run_dir": str(run)}) == run
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2, 3]


@pytest.mark.parametrize("mode", ["cot", "icl", "stage2"])
def test_build_shards_writes_what_tokenize_writes(tmp_path, synthetic_corpus, mode):
    """Songs in memory -> the same documents as `yue-prep tokenize` of the manifest they came from."""
    from yue_train import build_shards
    from yue_train.data.manifest import load_song, read_manifest
    from yue_train.data.shards import iter_documents
    from yue_train.data.tokenize import TokenizeOptions, run_tokenize
    from yue_train.format.song import Song

    manifest, root = synthetic_corpus, synthetic_corpus.parent
    tracks = {"cot": ("vocal", "inst"), "icl": ("vocal", "inst"), "stage2": ("mixture",)}[mode]
    songs = [load_song(r.data, root, tracks=tracks, lyrics=mode != "stage2") for r in read_manifest(manifest)]
    bad = Song(id="broken", genres="pop", audio_length_in_sec=0.0, vocals=songs[0].vocals)  # no length, no mix
    summary = build_shards([*songs, bad], tmp_path / "api", mode=mode, seed=3, shard_docs=2)
    expected, code = run_tokenize(
        TokenizeOptions(manifest, tmp_path / "cli", root=root, mode=mode, seed=3, shard_docs=2, progress=False)
    )
    assert code == 0
    api_docs, cli_docs = list(iter_documents(tmp_path / "api")), list(iter_documents(tmp_path / "cli"))
    assert len(api_docs) == len(cli_docs) == expected["documents_written"] > 0
    for a, b in zip(api_docs, cli_docs, strict=True):
        assert np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.roles, b.roles)
        assert a.meta == b.meta
    assert [s["name"] for s in summary["shards"]] == [s["name"] for s in expected["shards"]]
    assert summary["tokens_per_role"] == expected["tokens_per_role"]
    (rejected,) = summary["rejected"]
    assert rejected["id"] == "broken" and rejected["line"] == len(songs) + 1
    reason = "stage-2 source(s) mixture have no codes" if mode == "stage2" else "audio_length_in_sec is 0.0"
    assert reason in rejected["reason"]
