"""``--separate demucs`` runs demucs's own separation code on a random-weight HTDemucs built from its config
and saved as a local model folder (``--separation-model``): stems come out at the codec's rate, are cached by
content, and a mix-only mp3 song becomes shards a model trains on. A local folder that could run code or
allocate beyond its weights is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data_prep_build.demucs_model import TINY_HTDEMUCS, demucs_importable, save_random_demucs

pytestmark = pytest.mark.skipif(
    not demucs_importable(), reason="demucs is not installed (make test installs it: see the Makefile)"
)
RATE = 16_000


@pytest.fixture(scope="module")
def demucs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_demucs(tmp_path_factory.mktemp("demucs") / "tiny_htdemucs")


def _mix(path: Path, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(path, wave, RATE)
    return wave


def test_local_model_separates_once_per_mix(tmp_path: Path, demucs_folder: Path, monkeypatch) -> None:
    from data_prep.separate import model_identity, separation_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mix = tmp_path / "song.mp3"
    _mix(mix, 3.0)
    cache = separation_cache(str(demucs_folder), "cpu")
    vocals, accompaniment = cache.separate(mix, RATE)
    assert vocals.dtype == accompaniment.dtype == np.float32
    assert abs(vocals.size - 3 * RATE) <= RATE // 100 and vocals.size == accompaniment.size  # mp3 padding
    assert np.isfinite(vocals).all() and np.abs(vocals).max() > 0 and np.abs(accompaniment).max() > 0
    again = separation_cache(str(demucs_folder), "cpu").separate(mix, RATE)
    assert np.array_equal(again[0], vocals) and np.array_equal(again[1], accompaniment)
    assert cache.misses == 1 and len(list((tmp_path / "cache" / "yue-train" / "separated").glob("*.npz"))) == 1
    # other weights under the same folder name are another model: its stems are not the cached ones
    other = save_random_demucs(tmp_path / "tiny_htdemucs", seed=1)
    assert model_identity(str(other)) != model_identity(str(demucs_folder))


def _write_config(folder: Path, config: object) -> None:
    (folder / "demucs.json").write_text(json.dumps(config), encoding="utf-8")


def _overwrite_same_size(path: Path) -> None:
    path.write_bytes(b"\xff" * path.stat().st_size)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _write_config(f, {"class": "os.system", "kwargs": {}}), "must name a class among HTDemucs"),
        (lambda f: _write_config(f, {"class": "HTDemucs", "kwargs": [1]}), "give its kwargs as an object"),
        (
            lambda f: _write_config(f, {"class": "HTDemucs", "kwargs": {**TINY_HTDEMUCS, "channels": 4096}}),
            "more than model.safetensors holds",
        ),
        (lambda f: _write_config(f, {"class": "HTDemucs", "kwargs": {"bogus": 1}}), "refuses the kwargs"),
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda f: _overwrite_same_size(f / "model.safetensors"), "does not fit HTDemucs"),
        (lambda f: (f / "demucs.json").write_text("[" * 100_000), "demucs.json"),
    ],
    ids=["class-outside-allowlist", "kwargs-not-object", "more-than-the-weights", "unknown-kwarg", "no-weights",
         "damaged-weights", "deep-json"],
)  # fmt: skip
def test_damaged_model_folder_is_one_line(tmp_path: Path, demucs_folder: Path, damage, message: str) -> None:
    import shutil

    from data_prep.separate import DemucsSeparator, SeparationUnavailable

    folder = Path(shutil.copytree(demucs_folder, tmp_path / "model"))
    damage(folder)
    with pytest.raises(SeparationUnavailable, match=message) as caught:
        DemucsSeparator(str(folder))
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)


@pytest.mark.slow
def test_mix_only_mp3_song_becomes_shards_that_train(
    tmp_path: Path, demucs_folder: Path, codec_dir: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from data_prep.build import cmd_build
    from tests.data_prep_build.conftest import build_args
    from yue_train.api import train

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    song = tmp_path / "songs" / "mp3_only"
    song.mkdir(parents=True)
    _mix(song / "song.mp3", 4.0)
    (song / "lyrics.lrc").write_text("[00:00.50] la la la\n[00:02.00] na na na\n", encoding="utf-8")
    (song / "tags.txt").write_text("pop, female, piano", encoding="utf-8")
    out = tmp_path / "out"
    args = build_args(
        song.parent, out, codec_dir, "--separate", "demucs", "--separation-model", str(demucs_folder),
        "--modes", "cot",
    )  # fmt: skip
    assert cmd_build(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "build_summary.json").read_text())
    assert summary["shards"]["cot"]["documents"] == 1 and summary["rejected"] == []
    assert len(list((tmp_path / "cache" / "yue-train" / "separated").glob("*.npz"))) == 1
    run = train(
        "demo",
        data={"train": [{"path": str(out / "shards" / "cot")}], "eval_fraction": 0},
        trainer={"max_steps": 2, "run_dir": str(tmp_path / "run"), "eval_every": 0, "save_every": 0},
    )
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) >= 2 and all(np.isfinite(losses))
    # a second build reads the cached stems and the codes: demucs does not run again
    assert cmd_build(args) == 0
    assert json.loads((out / "build_summary.json").read_text())["songs_reused"] == 1
