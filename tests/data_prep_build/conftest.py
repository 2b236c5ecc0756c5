"""Fixtures of the build tests: a tiny random-weight codec saved as a converted folder, and demo songs.

The codec has YuE's real frame arithmetic (16 kHz, hop 320, 50 frames/s, 1024-entry codebooks, 12
quantizers) with narrow layers, so encoding a few short songs takes seconds on two CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

SECTION_SECONDS = 2.0  # demo songs of ~11 s: one 6-s stage-2 chunk, every section >= 1 s


def make_tiny_codec(folder: Path, seed: int = 0) -> Path:
    from yue_train.codec.testing import random_codec

    return random_codec(folder, "tiny", seed)


@pytest.fixture(scope="session")
def codec_dir(tmp_path_factory) -> Path:
    return make_tiny_codec(tmp_path_factory.mktemp("tiny_codec") / "codec")


@pytest.fixture(scope="session")
def tags_file() -> Path:
    from tests.conftest import fixture_file

    return fixture_file("yue", "top_200_tags.json")


@pytest.fixture(scope="session")
def demo_songs(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Three demo songs (lyric forms: LRC, sections JSON, sections CSV) and their truth."""
    from yue_train.data.synthetic_audio import synth_demo

    out = tmp_path_factory.mktemp("demo") / "songs"
    return out, synth_demo(out, 3, seed=0, section_seconds=SECTION_SECONDS)


def copy_songs(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def build_args(input_dir: Path, out: Path, codec: Path, *extra: str) -> argparse.Namespace:
    from data_prep.build import add_build_args

    p = argparse.ArgumentParser()
    add_build_args(p)
    return p.parse_args(
        [
            "--input",
            str(input_dir),
            "--out",
            str(out),
            "--codec",
            str(codec),
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )
