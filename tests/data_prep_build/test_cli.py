"""The `yue-prep synth-demo` and `yue-prep build` subcommands through the real entry point."""

import json
import subprocess
import sys

from data_prep.cli import main as prep_main


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
