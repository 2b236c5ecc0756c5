"""The three commands: convert-codec, encode (paths and manifest; bad files reported), decode."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.codec.conftest import PROMPT_EGS, require, write_wav
from yue_train.codec.cli import convert_codec_main, decode_main, encode_main


@pytest.mark.parametrize("command", ["convert-codec", "encode", "decode"])
def test_module_is_runnable_with_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "yue_train.codec.cli", command, "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert ("--xcodec-ckpt" if command == "convert-codec" else "--codec") in proc.stdout


def test_convert_codec_command(official_tree, tmp_path, capsys):
    out = tmp_path / "codec"
    argv = ["--xcodec-ckpt", str(official_tree["ckpt"]), "--vocal-decoder", str(official_tree["vocal"])]
    assert (
        convert_codec_main([*argv, "--inst-decoder", str(official_tree["inst"]), "--out", str(out), "--no-hash"]) == 0
    )
    assert "12 codebooks" in capsys.readouterr().out
    meta = json.loads((out / "yue_codec.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == [
        "upsampler_inst.safetensors",
        "upsampler_vocal.safetensors",
        "xcodec.safetensors",
        "yue_codec.json",
    ]
    assert meta["upsamplers"]["vocal"]["config"]["hop_length"] == 882


def test_convert_codec_missing_file(tmp_path, capsys):
    assert convert_codec_main(["--xcodec-ckpt", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.pth" in capsys.readouterr().err


def test_encode_continues_past_bad_files_and_reports_them(codec_dir, tmp_path, capsys):
    good = write_wav(tmp_path / "good.wav", 1.5, 44100, channels=2)
    other = write_wav(tmp_path / "other.wav", 0.8, 8000, seed=1)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"\xff\xfb" + bytes(range(256)) * 20)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(8000, np.float32), 16000)
    out = tmp_path / "codes"
    rc = encode_main(
        [
            "--codec",
            str(codec_dir),
            "--out",
            str(out),
            "--n-codebooks",
            "8",
            str(good),
            str(corrupt),
            str(silent),
            str(other),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert str(corrupt) in captured.err and str(silent) in captured.err
    codes = np.load(out / "good.npy")
    assert codes.dtype == np.int16 and codes.shape == (8, 75)
    assert np.load(out / "other.npy").shape == (8, 40)
    report = json.loads((out / "encode_report.json").read_text())
    assert report["summary"]["ok"] == 2 and report["summary"]["error"] == 2
    status = {r["audio"]: r for r in report["files"]}
    assert status[str(corrupt)]["status"] == "error" and "cannot decode audio" in status[str(corrupt)]["error"]
    assert status[str(silent)]["status"] == "error" and "silent" in status[str(silent)]["error"]
    # a second run skips what exists
    assert encode_main(["--codec", str(codec_dir), "--out", str(out), str(good)]) == 0
    assert "1 skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_encode_manifest_and_real_mp3(codec_dir, tmp_path):
    mp3 = require(PROMPT_EGS / "pop.00001.Instrumental.mp3")
    write_wav(tmp_path / "a.wav", 0.5, 22050)
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(
        json.dumps({"audio": "a.wav", "out": "first"}) + "\n" + json.dumps({"audio": str(mp3), "id": "inst"}) + "\n"
    )
    out = tmp_path / "codes"
    assert (
        encode_main(
            ["--codec", str(codec_dir), "--out", str(out), "--manifest", str(manifest), "--chunk-seconds", "10"]
        )
        == 0
    )
    assert np.load(out / "first.npy").shape == (1, 25)
    assert abs(np.load(out / "inst.npy").shape[1] - 1500) <= 2  # 30 s, encoded in 10 s windows


def test_encode_needs_input(codec_dir, tmp_path, capsys):
    assert encode_main(["--codec", str(codec_dir), "--out", str(tmp_path)]) == 1
    assert "give audio files" in capsys.readouterr().err


def test_decode_16k_and_upsampled(codec_dir, tmp_path):
    codes = np.random.default_rng(0).integers(0, 1024, (8, 30)).astype(np.int16)
    npy = tmp_path / "song.npy"
    np.save(npy, codes)
    assert decode_main(["--codec", str(codec_dir), "--codes", str(npy), "--out", str(tmp_path / "a.wav")]) == 0
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.frames) == (16000, 320 * 30)
    assert (
        decode_main(
            ["--codec", str(codec_dir), "--codes", str(npy), "--track", "inst", "--out", str(tmp_path / "b.flac")]
        )
        == 0
    )
    info = sf.info(str(tmp_path / "b.flac"))
    assert (info.samplerate, info.frames) == (44100, 882 * 30)
    np.save(tmp_path / "cb0.npy", codes[0])  # a (frames,) codebook-0 stream also decodes
    assert (
        decode_main(["--codec", str(codec_dir), "--codes", str(tmp_path / "cb0.npy"), "--out", str(tmp_path / "c.wav")])
        == 0
    )


def test_decode_rejects_out_of_range_codes(codec_dir, tmp_path, capsys):
    npy = tmp_path / "bad.npy"
    np.save(npy, np.array([[1, 2, 4096]]))
    assert decode_main(["--codec", str(codec_dir), "--codes", str(npy), "--out", str(tmp_path / "x.wav")]) == 1
    err = capsys.readouterr().err
    assert str(npy) in err and "4096" in err
    assert not (tmp_path / "x.wav").exists()


def test_decode_without_converted_folder(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((1, 3), np.int16))
    assert (
        decode_main(["--codec", str(tmp_path), "--codes", str(tmp_path / "c.npy"), "--out", str(tmp_path / "x.wav")])
        == 1
    )
    assert "convert-codec" in capsys.readouterr().err
