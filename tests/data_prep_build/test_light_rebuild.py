"""A build whose songs all have their codes tokenizes in a process that never loads torch or transformers."""

from __future__ import annotations

import shutil

import pytest

from data_prep.build import cmd_build
from tests.data_prep.test_light_imports import run_prep
from tests.data_prep_build.conftest import build_args
from yue_train.data.shards import read_summary


@pytest.mark.slow
def test_rebuild_with_reused_codes_tokenizes_without_torch(tmp_path, demo_songs, codec_dir):
    songs = tmp_path / "songs"
    shutil.copytree(demo_songs[0], songs)
    out = tmp_path / "out"
    assert cmd_build(build_args(songs, out, codec_dir, "--modes", "cot")) == 0
    # a new shard set over the same songs: no song is encoded again, the tokenizer runs
    argv = ["build", "--input", str(songs), "--out", str(out), "--codec", str(codec_dir), "--device", "cpu",
            "--no-progress", "--modes", "cot,stage2"]  # fmt: skip
    codes, loaded, heavy_imports, text = run_prep(argv)
    assert codes == [0]
    assert loaded == [] and heavy_imports == []
    assert "3 reused" in text
    assert read_summary(out / "shards" / "stage2")["documents_written"] > 0
