"""The hand-written Vocos upsampler, its conversion, and YuE's low-band post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.codec.conftest import TINY_UPSAMPLER, XCODEC_REF, random_upsampler, require
from yue_train.codec.config import UpsamplerConfig
from yue_train.codec.convert import CheckpointLayoutError
from yue_train.codec.convert_files import load_official_upsampler
from yue_train.codec.playback import render_song
from yue_train.codec.postprocess import biquad, biquad_coefficients, replace_low_band
from yue_train.codec.vocos import ISTFT, VocosUpsampler


def _official_vocos_keys(cfg: UpsamplerConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official VocosDecoder(VocosBackbone, ISTFTHead) state dict."""
    d, i = cfg.dim, cfg.intermediate_dim
    keys = {"backbone.embed.weight": (d, cfg.input_channels, 7), "backbone.embed.bias": (d,)}
    keys |= {"backbone.norm.weight": (d,), "backbone.norm.bias": (d,)}
    for n in range(cfg.num_layers):
        p = f"backbone.convnext.{n}."
        keys |= {
            p + "dwconv.weight": (d, 1, 7),
            p + "dwconv.bias": (d,),
            p + "norm.weight": (d,),
            p + "norm.bias": (d,),
        }
        keys |= {
            p + "pwconv1.weight": (i, d),
            p + "pwconv1.bias": (i,),
            p + "pwconv2.weight": (d, i),
            p + "pwconv2.bias": (d,),
        }
        keys[p + "gamma"] = (d,)
    keys |= {"backbone.final_layer_norm.weight": (d,), "backbone.final_layer_norm.bias": (d,)}
    keys |= {
        "head.out.weight": (cfg.n_fft + 2, d),
        "head.out.bias": (cfg.n_fft + 2,),
        "head.istft.window": (cfg.n_fft,),
    }
    return keys


def test_released_upsampler_config_and_key_layout():
    cfg = UpsamplerConfig.from_official_yaml(require(XCODEC_REF / "decoders" / "config.yaml"))
    assert (cfg.input_channels, cfg.dim, cfg.intermediate_dim, cfg.num_layers) == (1024, 512, 1536, 8)
    assert (cfg.n_fft, cfg.hop_length, cfg.padding) == (3528, 882, "same")
    with torch.device("meta"):
        up = VocosUpsampler(cfg)
    assert {k: tuple(v.shape) for k, v in up.state_dict().items()} == _official_vocos_keys(cfg)


def test_istft_inverts_a_same_padded_stft():
    n_fft, hop, frames = 3528, 882, 12
    signal = torch.randn(2, frames * hop, dtype=torch.float64)
    istft = ISTFT(n_fft, hop).double()
    pad = (n_fft - hop) // 2
    padded = F.pad(signal, (pad, pad))
    windows = padded.unfold(-1, n_fft, hop) * istft.window  # (B, frames, n_fft)
    assert windows.shape[1] == frames
    spec = torch.fft.rfft(windows, dim=-1).transpose(1, 2)
    torch.testing.assert_close(istft(spec), signal, rtol=0, atol=1e-10)


def test_upsampler_output_is_882_samples_per_frame():
    up = random_upsampler(TINY_UPSAMPLER, 0)
    for frames in (1, 5, 64):
        y = up(torch.randn(2, 96, frames))
        assert y.shape == (2, 882 * frames) and torch.isfinite(y).all()


def test_official_decoder_files_load(tmp_path):
    up = random_upsampler(TINY_UPSAMPLER, 0)
    state = up.state_dict()
    # a Lightning-style file that also holds the feature extractor and lacks the window buffer
    wrapped = {
        "state_dict": {
            **{k: v for k, v in state.items() if k != "head.istft.window"},
            "feature_extractor.mel.w": torch.ones(2),
        }
    }
    path = tmp_path / "decoder.pth"
    torch.save(wrapped, path)
    loaded = load_official_upsampler(path, None)
    x = torch.randn(1, 96, 9)
    torch.testing.assert_close(loaded(x), up(x))


def test_wrong_decoder_shapes_name_the_file(tmp_path):
    state = random_upsampler(TINY_UPSAMPLER, 0).state_dict()
    state["backbone.convnext.1.pwconv2.weight"] = torch.zeros(32, 65)
    path = tmp_path / "decoder_131000.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointLayoutError) as err:
        load_official_upsampler(path, None)
    assert str(path) in str(err.value) and "backbone.convnext.1.pwconv2.weight" in str(err.value)


def _direct_biquad(x: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x, dtype=np.float64)
    for n in range(len(x)):
        y[n] = sum(b[k] * x[n - k] for k in range(3) if n - k >= 0) - sum(a[k] * y[n - k] for k in (1, 2) if n - k >= 0)
    return y


@pytest.mark.parametrize("kind", ["lowpass", "highpass"])
def test_biquad_equals_the_recursive_filter(kind):
    x = 0.3 * np.random.default_rng(0).standard_normal(3000)
    b, a = biquad_coefficients(kind, 44100, 5500.0)
    np.testing.assert_allclose(biquad(x, 44100, 5500.0, kind), _direct_biquad(x, b, a), atol=1e-6)


def _amplitude(x: np.ndarray, sr: int, hz: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / (np.hanning(len(x)).sum() / 2)
    return float(spec[round(hz * len(x) / sr)])


def test_low_band_replacement_matches_energy_and_keeps_highs():
    t16 = np.arange(32000) / 16000
    t44 = np.arange(88200) / 44100
    recon = 0.3 * np.sin(2 * np.pi * 300 * t16)  # the 16 kHz reconstruction's low band, too loud
    upsampled = 0.1 * np.sin(2 * np.pi * 300 * t44) + 0.2 * np.sin(2 * np.pi * 12000 * t44)
    out = replace_low_band(recon, upsampled)
    assert out.shape == (88200,)
    assert _amplitude(out[4410:], 44100, 300) == pytest.approx(0.1, rel=0.03)  # energy matched to the upsampled mix
    assert _amplitude(out[4410:], 44100, 12000) == pytest.approx(
        _amplitude(biquad(upsampled, 44100, 5500, "highpass")[4410:], 44100, 12000), rel=1e-3
    )


def test_render_song_stems_and_mixes(tiny_codec):
    rng = np.random.default_rng(0)
    vocal, inst = rng.integers(0, 1024, (8, 40)), rng.integers(0, 1024, (8, 42))
    out = render_song(tiny_codec, vocal, inst)
    assert set(out) == {"vocal_16k", "inst_16k", "mix_16k", "vocal_44k", "inst_44k", "mix_44k", "final"}
    assert out["mix_16k"][0].shape == (320 * 40,) and out["mix_16k"][1] == 16000
    assert out["mix_44k"][0].shape == (882 * 40,) and out["final"][1] == 44100
    assert abs(len(out["final"][0]) - 882 * 40) <= 1
