"""Encode/decode behaviour of YueCodec: frame arithmetic, batching, chunking, lengths, code checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.codec.conftest import music_like
from yue_train.codec.model import ChunkPlan, CodesError, YueCodec


@pytest.fixture(scope="module")
def codec64(codec_dir) -> YueCodec:
    """A float64 copy: exactness checks without float32 near-ties."""
    codec = YueCodec.from_folder(codec_dir, device="cpu")
    codec.model.double()
    for up in codec.upsamplers.values():
        up.double()
    return codec


def test_frame_count_is_hop_320(tiny_codec):
    assert [tiny_codec.n_frames(n) for n in (320, 16000, 480000, 480003)] == [1, 50, 1500, 1500]
    wave = music_like(1.013, 16000)
    assert tiny_codec.encode(wave).shape == (1, tiny_codec.n_frames(len(wave)))


def test_bandwidths_map_to_codebook_counts(tiny_codec):
    wave = music_like(0.5, 16000)
    for k in (1, 2, 8, 12):
        codes = tiny_codec.encode(wave, n_codebooks=k)
        assert codes.shape == (k, 25) and codes.dtype == np.int16
        assert codes.min() >= 0 and codes.max() < 1024
    with pytest.raises(ValueError, match="n_codebooks"):
        tiny_codec.encode(wave, n_codebooks=5)  # 2.5 kbps is not one of the codec's bandwidths


def test_codebook_prefix_is_stable(tiny_codec):
    """Residual quantisation: the first k codebooks do not depend on how many follow (stage 1 = row 0 of stage 2)."""
    wave = music_like(0.7, 16000, seed=3)
    full = tiny_codec.encode(wave, n_codebooks=12)
    np.testing.assert_array_equal(tiny_codec.encode(wave, n_codebooks=1), full[:1])
    np.testing.assert_array_equal(tiny_codec.encode(wave, n_codebooks=8), full[:8])


def test_batched_encode_equals_one_by_one(codec64):
    rng = np.random.default_rng(0)
    waves = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in (4000, 4000, 3123, 4000, 3123)]
    batched = codec64.encode_many(waves, n_codebooks=8, batch_size=3)
    for wave, codes in zip(waves, batched, strict=True):
        np.testing.assert_array_equal(codes, codec64.encode(wave, n_codebooks=8))


def test_chunked_encode_covers_every_frame(codec64, monkeypatch):
    wave = music_like(2.37, 16000, seed=4)
    total = codec64.n_frames(len(wave))
    whole = codec64.encode(wave, n_codebooks=2)
    monkeypatch.setattr(codec64, "chunk", ChunkPlan(chunk_frames=35, context_frames=8))
    windows = codec64.chunk.windows(total)
    assert len(windows) == 4 and windows[0][2] == 0 and windows[-1][3] == total
    chunked = codec64.encode(wave, n_codebooks=2)
    assert chunked.shape == whole.shape == (2, total)
    # Each window sees only its own audio (HuBERT attends over the whole input), so chunked codes are
    # close to one pass, not equal; files up to chunk + context frames are encoded in one exact pass.
    assert float((chunked[0] == whole[0]).mean()) > 0.3
    monkeypatch.setattr(codec64, "chunk", ChunkPlan(chunk_frames=total - 10, context_frames=10))
    np.testing.assert_array_equal(codec64.encode(wave, n_codebooks=2), whole)


@pytest.mark.parametrize("frames", [1, 7, 50, 133])
def test_decode_and_upsample_lengths(tiny_codec, frames):
    codes = np.random.default_rng(frames).integers(0, 1024, (8, frames))
    assert tiny_codec.decode(codes).shape == (320 * frames,)
    for track in ("vocal", "inst"):
        y = tiny_codec.upsample(codes, track)
        assert y.shape == (882 * frames,) and np.isfinite(y).all()


def test_chunked_decode_and_upsample_equal_one_pass(codec64):
    codes = np.random.default_rng(1).integers(0, 1024, (8, 90))
    one = codec64.decode(codes, chunk_frames=1000)
    chunked = codec64.decode(codes, chunk_frames=30, context_frames=16)
    np.testing.assert_allclose(chunked, one, rtol=0, atol=1e-10 * max(1.0, np.abs(one).max()))
    up_one = codec64.upsample(codes, "vocal", chunk_frames=1000)
    up_chunked = codec64.upsample(codes, "vocal", chunk_frames=30, context_frames=48)
    np.testing.assert_allclose(up_chunked, up_one, rtol=0, atol=1e-9 * max(1.0, np.abs(up_one).max()))


def test_upsamplers_take_the_summed_codebook_embedding(codec64):
    """The vocal and inst upsamplers are different networks on the same 1024-d (here 96-d) embedding."""
    codes = np.random.default_rng(2).integers(0, 1024, (8, 20))
    emb = codec64.embed(codes)
    expected = sum(codec64.model.quantizer.quantizers[k].codebook.embed[torch.from_numpy(codes[k])] for k in range(8))
    torch.testing.assert_close(emb[0].T, expected)
    assert not np.allclose(codec64.upsample(codes, "vocal"), codec64.upsample(codes, "inst"))


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (np.array([[0, 1, 1024]]), "code 1024 (codebook 0, frame 2)"),
        (np.array([[0, -1, 3]]), "code -1"),
        (np.zeros((13, 4), dtype=np.int64), "13 codebooks"),
        (np.zeros((1, 0), dtype=np.int64), "frames > 0"),
        (np.zeros((1, 4), dtype=np.float32), "integers"),
    ],
)
def test_bad_codes_are_refused_naming_the_source(tiny_codec, codes, message):
    with pytest.raises(CodesError) as err:
        tiny_codec.decode(codes, source="song.npy")
    assert "song.npy" in str(err.value) and message in str(err.value)


def test_missing_upsampler_is_a_clear_error(codec_dir):
    codec = YueCodec.from_folder(codec_dir, device="cpu", load_upsamplers=False)
    with pytest.raises(KeyError, match="no 'vocal' upsampler"):
        codec.upsample(np.zeros((1, 3), dtype=np.int64), "vocal")
