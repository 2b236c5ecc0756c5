"""``yue-prep build --align``: songs with plain lyrics.txt become documents whose sections start where their
singing starts; a song whose lyrics cannot be aligned is rejected with its reason, the rest go on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.build import cmd_build
from tests.data_prep_build.conftest import build_args
from tests.lyrics.espeak_song import LYRICS, RATE, espeak_available, espeak_song

pytest.importorskip("pocketsphinx", reason="the pocketsphinx backend needs `pip install pocketsphinx` (align extra)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"),
]


def _raw_song(folder: Path, vocal: np.ndarray, lyrics: str) -> None:
    folder.mkdir(parents=True)
    t = np.arange(vocal.size) / RATE
    inst = (0.1 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    sf.write(folder / "vocals.wav", vocal, RATE)
    sf.write(folder / "instrumental.wav", inst, RATE)
    sf.write(folder / "song.wav", vocal + inst, RATE)
    (folder / "lyrics.txt").write_text(lyrics, encoding="utf-8")
    (folder / "tags.txt").write_text("pop, female, piano", encoding="utf-8")


def test_plain_lyrics_build_with_align(tmp_path: Path, codec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    song = espeak_song(tmp_path)
    songs = tmp_path / "songs"
    _raw_song(songs / "a_sung", song.audio, LYRICS)
    silent = 1e-4 * np.random.default_rng(1).standard_normal(song.audio.size).astype(np.float32)
    _raw_song(songs / "b_no_singing", silent, LYRICS)  # an instrumental with lyrics: nothing to align to
    out = tmp_path / "out"
    args = build_args(songs, out, codec_dir, "--align", "--aligner", "pocketsphinx", "--modes", "cot")
    assert cmd_build(args) == 3  # one song rejected
    summary = json.loads((out / "build_summary.json").read_text())
    assert [r["id"] for r in summary["rejected"]] == ["b_no_singing"]
    assert summary["rejected"][0]["reason"].startswith("lyrics alignment failed: none of the 3 lines of block 0")
    info = summary["alignment"]["a_sung"]
    assert info["score"] > 0.25 and info["flagged"] == [] and not info["reused"]
    assert "lyrics a_sung: aligned, confidence" in capsys.readouterr().out
    (record,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    starts = {m["label"]: m["start"] for m in record["msa"]}
    assert abs(starts["verse"] - song.section_starts[0]) <= 0.3
    assert abs(starts["chorus"] - song.section_starts[1]) <= 0.3
    assert summary["shards"]["cot"]["documents"] == 1
    # a second run uses lyrics.aligned.lrc as it is (the user may have corrected it)
    assert cmd_build(args) == 3
    again = json.loads((out / "build_summary.json").read_text())
    assert again["alignment"]["a_sung"]["reused"] and again["songs_reused"] == 1
