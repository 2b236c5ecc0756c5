"""The `yue-prep synth-demo` and `yue-prep build` subcommands through the real entry point."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.build import MODES, BuildOptions, add_build_args
from data_prep.cli import main as prep_main
from yue_train.cli.options import options_from


def test_synth_demo_then_build_through_yue_prep(tmp_path, codec_dir, capsys):
    songs, out = tmp_path / "songs", tmp_path / "data"
    assert prep_main(["synth-demo", "--out", str(songs), "--n", "2", "--section-seconds", "2"]) == 0
    assert len([p for p in songs.iterdir() if p.is_dir()]) == 2
    args = ["build", "--input", str(songs), "--out", str(out), "--codec", str(codec_dir), "--modes", "cot,stage2"]
    assert prep_main(args) == 0
    mixture = json.loads((out / "mixture.json").read_text())
    sets = {d["mode"]: d for d in mixture["datasets"]}
    assert set(sets) == {"cot", "stage2"}
    assert sets["cot"]["documents"] == 2 and sets["stage2"]["documents"] == 4  # stage 2: vocal and inst per song
    assert mixture["tokens_total"] == sum(d["tokens"] for d in sets.values()) > 0
    capsys.readouterr()
    assert prep_main(args) == 0  # a second run finds everything done


def test_yue_prep_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "data_prep.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("synth-demo", "build", "convert-codec", "encode", "tokenize", "inspect", "demo"):
        assert command in out


def test_build_flags_are_derived_from_the_options_fields():
    p = argparse.ArgumentParser()
    add_build_args(p)
    argv = ["--out", "o", "--codec", "c", "--input", "i", "--modes", "cot, icl", "--stage2-source", "mixture"]
    args = p.parse_args([*argv, "--workers", "2", "--align", "--no-progress", "--min-align-score", "0.5"])
    opts = options_from(args, BuildOptions, hf_columns={}, stage2_sources=tuple(args.stage2_sources))
    assert (opts.out, opts.codec, opts.input) == (Path("o"), Path("c"), Path("i"))
    assert opts.modes == ("cot", "icl-dual") and opts.stage2_sources == ("mixture",)
    assert opts.workers == 2 and opts.align and not opts.progress and opts.min_align_score == 0.5

    defaults = p.parse_args(["--out", "o", "--codec", "c"])
    assert defaults.modes == MODES and defaults.stage2_sources is None and defaults.hf_columns == ""
    assert defaults.progress and not defaults.force and defaults.input is None and defaults.tokenizer is None
    with pytest.raises(SystemExit):  # --out has no default: a required flag
        p.parse_args(["--codec", "c"])
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "o", "--codec", "c", "--separate", "spleeter"])  # choices from the field
