"""Audio references for ICL prompts: whole file encoded at 0.5 kbps, then the [start, end) frames kept."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codec.conftest import write_wav
from yue_train.codec.audio_io import load_audio
from yue_train.format import codec_layout as cl
from yue_train.generation.prompts import PromptInputError
from yue_train.generation.reference import Reference, reference_ids


def test_single_track_reference_window(tiny_codec, tmp_path):
    path = write_wav(tmp_path / "ref.wav", 3.0, 44100, channels=2)
    whole = tiny_codec.encode(load_audio(path), n_codebooks=1)
    ids, _ = reference_ids(Reference(mix=path, start=0.5, end=2.0), tiny_codec)
    assert ids.shape == (75,)
    np.testing.assert_array_equal(ids, cl.track_ids(whole[:, 25:100]))
    assert reference_ids(Reference(mix=path, end=3.0), tiny_codec)[0].shape == (whole.shape[1],)
    assert ids.min() >= cl.CODEC_OFFSET


def test_dual_reference_and_bad_window(tiny_codec, tmp_path):
    vocal = write_wav(tmp_path / "v.wav", 2.0, 16000, seed=1)
    inst = write_wav(tmp_path / "i.wav", 2.2, 32000, seed=2)
    ids, _ = reference_ids(Reference(vocal=vocal, inst=inst, start=0.0, end=1.0), tiny_codec)
    assert len(ids) == 100  # 50 vocal and 50 accompaniment frames, interleaved
    with pytest.raises(PromptInputError, match="reference window ends at 5.0 s but the reference is 2.00 s"):
        reference_ids(Reference(mix=vocal, start=0.0, end=5.0), tiny_codec)
