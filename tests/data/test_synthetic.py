"""The synthetic song generator (yue_train.data.synthetic) and the data-preparation step (yue_train.data.generated)."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest

from yue_train.config.compose import compose_config
from yue_train.data.generated import demo_corpus_in_use, prepare_data
from yue_train.data.manifest import load_song
from yue_train.data.synthetic import (
    AUDIO_STYLE,
    DEMO_STYLE,
    UNSUNG,
    demo_song,
    drawn_plan,
    synth_song,
    write_synthetic_manifest,
)
from yue_train.format import codec_layout as cl
from yue_train.format.sequences import build_stage2_document


def test_manifest_songs_load_with_the_real_loader_and_pass_the_stage2_filter(tmp_path):
    manifest = write_synthetic_manifest(tmp_path, n_songs=2, seed=4)
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        song = load_song(record, tmp_path, tracks=("vocal", "inst", "mixture"))
        assert song.vocals.shape == song.instrumental.shape == song.mixture.shape == (8, 54 * 50)
        assert [s.frame_start for s in song.segments] == [0, 300, 900, 1400, 1900, 2400]
        assert song.segments[0].line_content == "[intro]\n\n" and song.segments[1].line_content.count("\n") == 4
        assert len(record["genres"].split(", ")) == 5 and [m["label"] for m in song.msa][2] == "chorus"
        for track in (song.vocals, song.instrumental, song.mixture):
            assert build_stage2_document(track, song.id).meta["chunks_skipped"] == 0  # 9 chunks, all usable


def test_songs_follow_their_plan_and_style():
    plan = drawn_plan(np.random.default_rng(1), 3.0)
    song = synth_song(np.random.default_rng(2), "s", plan, AUDIO_STYLE, codes=False)
    assert song.vocals is None and song.mixture is None
    assert [s.label for s in song.sections] == [label for label, _ in plan]
    assert song.sections[0].start == 0 and all(a.end == b.start for a, b in pairwise(song.sections))
    assert song.seconds == pytest.approx(sum(sec for _, sec in plan))
    lines = [line for s in song.sections for line in s.lines]
    assert all(len(s.lines) == (0 if s.label in UNSUNG else 2) for s in song.sections)
    assert len(set(lines)) == len(lines) == 8  # phrases never repeat within a song
    assert len(song.tags) == len(AUDIO_STYLE.tags)
    again = synth_song(np.random.default_rng(2), "s", plan, AUDIO_STYLE, codes=False)
    assert again == song


def test_demo_songs_are_learnable_motifs():
    song = demo_song(np.random.default_rng(0), "d", 3.03, mixture=True)
    assert song.n_frames == 151 and [(s.frame_start, s.frame_end) for s in song.segments] == [(0, 75), (75, 151)]
    for track, (low, high) in ((song.vocals, DEMO_STYLE.vocal_period), (song.instrumental, DEMO_STYLE.inst_period)):
        assert track.shape == (1, 151) and track.max() < DEMO_STYLE.alphabet
        period = next(p for p in range(low, high) if np.array_equal(track[:, p:], track[:, :-p]))
        assert len(np.unique(track)) <= period
    assert song.mixture.shape == (1, 151) and cl.FRAMES_PER_SECOND * song.audio_length_in_sec == 151


def test_demo_corpus_is_written_only_when_the_config_reads_it(tmp_path):
    run = tmp_path / "run"
    demo = compose_config(["recipe=tiny", f"trainer.run_dir={run}", "data.demo_corpus.n_songs=3"])
    assert demo_corpus_in_use(demo)
    mine = compose_config(["recipe=tiny", f"trainer.run_dir={run}", f"data.train=[{{path: '{tmp_path}/mine'}}]"])
    assert not demo_corpus_in_use(mine) and prepare_data(mine) == [] and not run.exists()
    as_eval = compose_config(
        ["recipe=tiny", f"trainer.run_dir={run}", f"data.train=[{{path: '{tmp_path}/mine'}}]",
         f"data.eval=[{{path: '{run}/demo_corpus/'}}]", "data.demo_corpus.n_songs=3"]
    )  # fmt: skip
    assert demo_corpus_in_use(as_eval)
    assert prepare_data(demo) == [run / "demo_corpus"] and (run / "demo_corpus" / "demo_corpus.json").is_file()
