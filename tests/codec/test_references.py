"""Audio references for ICL prompts: whole file encoded at 0.5 kbps, then the [start, end) frames kept."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codec.conftest import write_wav
from yue_train.codec.audio_io import load_audio
from yue_train.codec.references import encode_dual_reference, encode_reference
from yue_train.format import codec_layout as cl


def test_single_track_reference_window(tiny_codec, tmp_path):
    path = write_wav(tmp_path / "ref.wav", 3.0, 44100, channels=2)
    whole = tiny_codec.encode(load_audio(path), n_codebooks=1)
    ref = encode_reference(tiny_codec, path, start=0.5, end=2.0)
    assert ref.shape == (1, 75)
    np.testing.assert_array_equal(ref, whole[:, 25:100])
    assert encode_reference(tiny_codec, path).shape == whole.shape
    assert cl.track_ids(ref).min() >= cl.CODEC_OFFSET


def test_dual_reference_and_bad_window(tiny_codec, tmp_path):
    vocal = write_wav(tmp_path / "v.wav", 2.0, 16000, seed=1)
    inst = write_wav(tmp_path / "i.wav", 2.2, 32000, seed=2)
    v, i = encode_dual_reference(tiny_codec, vocal, inst, start=0.0, end=1.0)
    assert v.shape == i.shape == (1, 50)
    assert len(cl.interleave(cl.track_ids(v), cl.track_ids(i))) == 100
    with pytest.raises(ValueError, match="reference starts at 5"):
        encode_reference(tiny_codec, vocal, start=5.0)
