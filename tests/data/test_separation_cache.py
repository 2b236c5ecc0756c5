"""Separated stems are cached by the mix's content: a second separation of the same bytes reads the cache.

demucs itself cannot be imported here (its openunmix dependency imports torchaudio, which cannot be
installed beside the CPU torch), so the separator is a stand-in that splits the file's samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from yue_train.data.separation_cache import SeparationCache


class HalfSplitter:
    """Vocals = 0.25 x the mix, accompaniment = 0.75 x; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def separate(self, path: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        x, _ = sf.read(path, dtype="float32")
        return 0.25 * x, 0.75 * x


def test_same_bytes_are_separated_once(tmp_path: Path) -> None:
    made: list[HalfSplitter] = []

    def make() -> HalfSplitter:
        made.append(HalfSplitter())
        return made[-1]

    mix = tmp_path / "mix.wav"
    sf.write(mix, np.linspace(-0.5, 0.5, 16_000, dtype=np.float32), 16_000)
    cache = SeparationCache(tmp_path / "cache", "htdemucs", make)
    vocals, inst = cache.separate(mix, 16_000)
    again_vocals, again_inst = SeparationCache(tmp_path / "cache", "htdemucs", make).separate(mix, 16_000)
    assert len(made) == 1 and made[0].calls == 1  # the second cache object read the entry
    np.testing.assert_array_equal(vocals, again_vocals)
    np.testing.assert_array_equal(inst, again_inst)
    assert list((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / f"{cache.key(mix, 16_000)}.npz"]
    cache.separate(mix, 44_100)  # another rate: another entry
    sf.write(mix, np.linspace(0.5, -0.5, 16_000, dtype=np.float32), 16_000)  # new bytes, same name
    new_vocals, _ = cache.separate(mix, 16_000)
    assert cache.misses == 3 and made[0].calls == 3 and not np.array_equal(new_vocals, vocals)
    other_model = SeparationCache(tmp_path / "cache", "mdx", make)
    other_model.separate(mix, 16_000)
    assert other_model.misses == 1


def test_a_separator_that_cannot_be_made_fails_every_song_at_once(tmp_path: Path) -> None:
    tries = []

    def unreachable() -> HalfSplitter:
        tries.append(1)
        raise OSError("demucs weights 'htdemucs' cannot be downloaded")

    mix = tmp_path / "mix.wav"
    sf.write(mix, np.zeros(1600, dtype=np.float32), 16_000)
    cache = SeparationCache(tmp_path / "cache", "htdemucs", unreachable)
    for _ in range(3):
        with pytest.raises(OSError, match="cannot be downloaded"):
            cache.separate(mix, 16_000)
    assert len(tries) == 1


def test_unreachable_demucs_weights_are_named_with_how_to_get_them(tmp_path: Path) -> None:
    from urllib.error import URLError

    from data_prep.separate import DemucsSeparator, SeparationUnavailable

    asked: list[str] = []

    def offline(name: str):  # what demucs's get_model raises when dl.fbaipublicfiles.com cannot be resolved
        asked.append(name)
        raise URLError("[Errno -2] Name or service not known")

    mix = tmp_path / "mix.wav"
    sf.write(mix, np.zeros(1600, dtype=np.float32), 16_000)
    cache = SeparationCache(tmp_path / "cache", "htdemucs", lambda: DemucsSeparator("htdemucs", get_model=offline))
    for _ in range(2):  # the second song fails at once with the same line, without asking again
        with pytest.raises(SeparationUnavailable) as raised:
            cache.separate(mix, 16_000)
        message = str(raised.value)
        assert "\n" not in message and message.startswith("demucs weights 'htdemucs' cannot be loaded (<urlopen error")
        assert "Name or service not known" in message and "torch hub cache (" in message
        assert (
            "get_model('htdemucs')\"` once with network" in message and "vocals.* and instrumental.* stems" in message
        )
    assert asked == ["htdemucs"]
