"""`yue-eval` on the output of `yue-infer generate` (tiny random models and codec): eval.json, the HTML
report opened in headless Chromium, W&B offline; and its one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from inference.cli import main as infer_main
from inference.evaluate import main as eval_main
from tests.evaluation.browser import chromium, rendered
from tests.evaluation.songs import CONTOUR_METRIC, install_contour_metric
from tests.tiny_models import tiny_llama
from yue_train.codec.testing import random_codec

N_SONGS = 2


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """`yue-infer generate` with a codec: 2 songs of 2 sections, codes and 16 kHz audio."""
    root = tmp_path_factory.mktemp("gen")
    tiny_llama(seed=0, dtype=torch.float32).save_pretrained(root / "s1")
    tiny_llama(seed=1, dtype=torch.float32).save_pretrained(root / "s2")
    random_codec(root / "codec")
    (root / "genre.txt").write_text("pop female bright")
    (root / "lyrics.txt").write_text("[verse]\nla la\n\n[chorus]\nna na\n")
    args = [
        "generate", "--genre-txt", str(root / "genre.txt"), "--lyrics-txt", str(root / "lyrics.txt"),
        "--stage1-model", str(root / "s1"), "--stage2-model", str(root / "s2"), "--codec", str(root / "codec"),
        "--out", str(root / "songs"), "--n-songs", str(N_SONGS), "--max-new-tokens", "30", "--min-new-tokens", "10",
        "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    assert infer_main(args) == 0
    return root


@pytest.mark.slow
def test_yue_eval_scores_a_yue_infer_output(generated, tmp_path, monkeypatch):
    install_contour_metric(monkeypatch)
    out = tmp_path / "eval"
    songs = generated / "songs"
    metrics = f"structure,{CONTOUR_METRIC}"
    assert eval_main([str(songs), "--metrics", metrics, "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "eval.json").read_text())
    report = json.loads((songs / "report.json").read_text())
    assert [s["id"] for s in data["songs"]] == ["song00", "song01"]
    for entry, gen in zip(data["songs"], report["songs"], strict=True):
        values = entry["values"]
        assert values["structure/sections_generated"] == len(gen["sections"]) == 2
        assert values["structure/sections_requested"] == 2
        assert values["structure/seconds"] == gen["frames"] / 50
        assert values["structure/failed_parses"] == 0
        assert entry["genres"] == "pop female bright" and entry["lyrics"].startswith("[verse]")
        assert set(entry["media"]) == {"mix", "vocal", "inst"}
        assert all((out / p).is_file() for p in entry["media"].values())
        assert entry["seconds"] == pytest.approx(gen["frames"] / 50)
    assert data["aggregate"]["songs"] == N_SONGS
    assert data["config"]["songs"] == str(songs) and data["skipped"] == {}

    # The report works where it is copied to, in a real browser: tables, players, pictures, lyrics.
    moved = tmp_path / "copied"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    driver = chromium(tmp_path / "profile")
    try:
        page = rendered(driver, moved / "report.html", players=3 * N_SONGS)
    finally:
        driver.quit()
    assert page["tables"] == [1 + 9, 1 + N_SONGS]  # aggregate: 7 structure + 2 contour values; a row per song
    assert page["cells"][0] == "song00"
    assert len(page["players"]) == 3 * N_SONGS
    for player in page["players"]:
        assert player["error"] is None and player["ready"] >= 1 and player["width"] > 0
        assert player["duration"] == pytest.approx(data["songs"][0]["seconds"], abs=0.6)
    assert [i["alt"] for i in page["images"]] == [
        f"song0{k} {kind}" for k in range(N_SONGS) for kind in ("spectrogram", "pitch")
    ]
    assert all(i["width"] > 100 and i["height"] > 50 and i["shown"] > 0 for i in page["images"])
    assert page["lyrics"][0].startswith("[verse]\nla la")


@pytest.mark.slow
def test_yue_eval_logs_to_wandb_offline(generated, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "eval"
    metrics = "structure,vocal_range"
    args = [str(generated / "songs"), "--metrics", metrics, "--out", str(out), "--wandb", "--no-progress", "-q"]
    assert eval_main(args) == 0
    (run,) = (out / "wandb").glob("offline-run-*")
    media = run / "files" / "media"
    assert len(list((media / "audio").rglob("*.wav"))) == 2 * N_SONGS  # mix and vocal of each song
    images = [p.name for p in (media / "images").rglob("*.png")]
    assert sum(n.startswith("spectrogram") for n in images) == N_SONGS
    assert sum(n.startswith("pitch") for n in images) == N_SONGS  # vocal_range's contour
    (table,) = (media / "table").rglob("*.table.json")
    rows = json.loads(table.read_text())
    assert len(rows["data"]) == N_SONGS and "structure/sections_generated" in rows["columns"]
    (page,) = (media / "html").rglob("*.html")
    assert "<table" in page.read_text()
    assert list(run.glob("run-*.wandb"))


@pytest.mark.slow
def test_yue_eval_generates_from_a_prompt_set_then_scores(generated, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"id": "ballad", "genres": "ballad piano", "lyrics": "[verse]\\nslow\\n"}\n'
        '{"id": "rock", "genres": "rock guitar", "lyrics": "[verse]\\nloud\\n\\n[chorus]\\nlouder\\n"}\n'
    )
    out = tmp_path / "out"
    args = [
        "--generate", "--prompts", str(prompts), "--stage1-model", str(generated / "s1"),
        "--stage2-model", str(generated / "s2"), "--codec", str(generated / "codec"), "--out", str(out),
        "--max-new-tokens", "20", "--min-new-tokens", "5", "--device", "cpu", "--no-progress", "--metrics", "structure",
    ]  # fmt: skip
    assert eval_main(args) == 0
    data = json.loads((out / "eval.json").read_text())
    assert [(s["id"], s["genres"]) for s in data["songs"]] == [("ballad", "ballad piano"), ("rock", "rock guitar")]
    assert [s["values"]["structure/sections_requested"] for s in data["songs"]] == [1, 2]
    assert all(set(s["media"]) == {"mix", "vocal", "inst"} for s in data["songs"])
    assert (out / "report.html").is_file() and (out / "song01" / "stage2_vocal.npy").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["{tmp}/nowhere"], "no such folder"),
        (["{tmp}"], "no audio files"),
        (["{tmp}", "--metrics", "structure,nope"], "unknown metric 'nope'"),
        (["{tmp}", "--option", "structure"], "write METRIC.KEY=VALUE"),
        (["{tmp}", "--metrics", "structure", "--option", "fad.model=x"], "--option for 'fad', which is not among"),
        (["--generate", "--prompts", "p.jsonl"], "--generate needs --stage1-model, --prompts and --out"),
        (
            ["--generate", "--stage1-model", "m", "--prompts", "p", "--out", "o", "--codec", "c"],
            "--codec needs --stage2-model",
        ),
        ([], "give SONGS_DIR"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, args, message):
    assert eval_main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-eval: error: ") and message in err and err.count("\n") == 1
