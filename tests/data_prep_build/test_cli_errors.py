"""`yue-prep build` errors a README user meets, through the real CLI."""

import json

import pytest

from data_prep.cli import main as prep_main
from tests.data_prep_build.conftest import copy_songs


def test_modes_accept_icl_as_the_readme_writes_it(tmp_path, codec_dir, demo_songs, capsys):
    songs = copy_songs(demo_songs[0], tmp_path / "songs")
    out = tmp_path / "data"
    args = ["build", "--input", str(songs), "--out", str(out), "--codec", str(codec_dir), "--device", "cpu"]
    assert prep_main([*args, "--modes", "cot,icl,stage2", "--no-progress"]) == 0
    mixture = json.loads((out / "mixture.json").read_text())
    assert [(d["name"], d["mode"], d.get("icl_prompt")) for d in mixture["datasets"]] == [
        ("cot", "cot", None),
        ("icl-dual", "icl", "dual"),
        ("stage2", "stage2", None),
    ]
    assert all(d["documents"] > 0 for d in mixture["datasets"])
    capsys.readouterr()
    assert prep_main([*args, "--modes", "cot,icl2", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().startswith("yue-prep build: error: unknown mode(s) ['icl2']; choose from")


@pytest.mark.parametrize("with_decoders", [True, False])
def test_an_official_codec_folder_says_to_run_convert_codec(tmp_path, demo_songs, capsys, with_decoders):
    official = tmp_path / "xcodec_mini_infer"
    (official / "final_ckpt").mkdir(parents=True)
    (official / "final_ckpt" / "ckpt_00360000.pth").write_bytes(b"")
    (official / "final_ckpt" / "config.yaml").write_text("generator: {}\n")
    if with_decoders:
        (official / "decoders").mkdir()
        for step in ("131000", "151000"):
            (official / "decoders" / f"decoder_{step}.pth").write_bytes(b"")
    args = ["build", "--input", str(demo_songs[0]), "--out", str(tmp_path / "data"), "--codec", str(official)]
    assert prep_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    convert = f"yue-prep convert-codec --xcodec-ckpt {official}/final_ckpt/ckpt_00360000.pth"
    if with_decoders:
        convert += f" --vocal-decoder {official}/decoders/decoder_131000.pth"
        convert += f" --inst-decoder {official}/decoders/decoder_151000.pth"
    assert f"is an official xcodec_mini_infer folder; convert it once with `{convert} --out codec/`" in err
    assert not (tmp_path / "data").exists()
