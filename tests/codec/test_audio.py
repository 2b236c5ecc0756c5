"""Audio files in: real mp3, any rate and channel count, bad files named in errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.codec.conftest import PROMPT_EGS, music_like, require, write_wav
from yue_train.codec.audio_io import AudioError, load_audio, write_audio


@pytest.mark.parametrize("name", ["pop.00001.mp3", "pop.00001.Vocals.mp3"])
def test_real_mp3_encodes_to_1500_frames(tiny_codec, name):
    """30 s of real music (44.1 kHz stereo mp3): decoded, mixed down, resampled, encoded."""
    path = require(PROMPT_EGS / name)
    info = sf.info(str(path))
    assert info.samplerate == 44100 and info.channels == 2
    wave = load_audio(path)
    assert abs(len(wave) - round(info.frames * 16000 / 44100)) <= 1
    assert 0.01 < np.abs(wave).max() <= 1.5
    codes = tiny_codec.encode(wave, n_codebooks=1)
    assert codes.shape[0] == 1 and abs(codes.shape[1] - 1500) <= 2
    assert len(np.unique(codes)) > 10  # real music through random weights still gives varied codes


def test_blockwise_resampling_matches_one_shot(tmp_path):
    """Long files are read and resampled in blocks; the result is the one-shot resampling of the mono mix."""
    src = music_like(13.0, 44100, channels=2, seed=2)
    path = tmp_path / "long.wav"
    sf.write(str(path), src, 44100, subtype="FLOAT")
    got = load_audio(path)
    ref = soxr.resample(src.mean(axis=1), 44100, 16000)
    assert abs(len(got) - len(ref)) <= 1
    n = min(len(got), len(ref))
    np.testing.assert_allclose(got[:n], ref[:n], atol=2e-4)


@pytest.mark.parametrize(
    ("sr", "channels", "suffix"),
    [(44100, 2, ".wav"), (8000, 1, ".wav"), (48000, 6, ".flac"), (22050, 1, ".ogg"), (16000, 1, ".mp3")],
)
def test_any_rate_and_channel_count(tmp_path, tiny_codec, sr, channels, suffix):
    path = tmp_path / f"in{suffix}"
    sf.write(str(path), music_like(2.0, sr, channels), sr)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # mp3 frames are 1152 samples: the decoder returns whole frames
    assert abs(len(wave) - 32000) <= (1200 if suffix == ".mp3" else 2), len(wave)
    codes = tiny_codec.encode(wave, n_codebooks=8)
    assert codes.shape[0] == 8 and abs(codes.shape[1] - 100) <= 3


def test_mono_8k_tone_keeps_its_pitch(tmp_path):
    path = write_wav(tmp_path / "tone8k.wav", 1.0, 8000)
    wave = load_audio(path)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 220) < 2


def _text(path):
    path.write_text("not audio")
    return path


def _corrupt(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"ID3\x03\x00\x00\x00" + np.random.default_rng(0).bytes(5000))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.wav", "file not found"),
        (lambda d: _corrupt(d, "corrupt.mp3"), "cannot decode audio"),
        (lambda d: _text(d / "text.wav"), "cannot decode audio"),
        (lambda d: sf.write(str(d / "empty.wav"), np.zeros(0, np.float32), 16000) or d / "empty.wav", "zero length"),
        (
            lambda d: sf.write(str(d / "silent.flac"), np.zeros(16000, np.float32), 16000) or d / "silent.flac",
            "is silent",
        ),
    ],
    ids=["missing", "corrupt-mp3", "text", "zero-length", "silent"],
)
def test_bad_audio_errors_name_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_silent_audio_allowed_on_request(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(3200, np.float32), 16000)
    assert load_audio(path, allow_silent=True).shape == (3200,)


def test_write_audio_clamps_like_the_official_save(tmp_path):
    path = write_audio(tmp_path / "out.wav", np.array([0.0, 2.0, -2.0, 0.5], np.float32), 16000)
    data, sr = sf.read(str(path))
    assert sr == 16000 and sf.info(str(path)).subtype == "PCM_16"
    np.testing.assert_allclose(data, [0.0, 0.99, -0.99, 0.5], atol=1e-4)
    path = write_audio(tmp_path / "r.wav", np.array([0.0, 2.0, -1.0], np.float32), 16000, rescale=True)
    np.testing.assert_allclose(sf.read(str(path))[0], [0.0, 0.99, -0.495], atol=1e-4)


def test_ffmpeg_fallback_reads_what_libsndfile_cannot(tmp_path):
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed: the fallback decoder cannot be exercised here")
    src = write_wav(tmp_path / "src.wav", 1.0, 44100)
    m4a = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), str(m4a)], check=True)
    wave = load_audio(m4a)
    assert abs(len(wave) - 16000) < 2000
