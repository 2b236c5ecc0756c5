"""Fixtures of the codec tests: a tiny random codec in the official checkpoint layout, converted once.

Tiny = the released architecture with narrower layers (HuBERT 2 x 64 wide, DAC 8..128 channels): strides,
hop (320), frame rate, codebook count and size are YuE's, so frame arithmetic is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.codec.xcodec_reference import OfficialXcodec
from tests.conftest import FIXTURES
from yue_train.codec.config import UpsamplerConfig
from yue_train.codec.testing import TINY_HUBERT
from yue_train.codec.vocos import VocosUpsampler

XCODEC_REF = FIXTURES / "xcodec_mini_infer"
PROMPT_EGS = FIXTURES / "yue" / "prompt_egs"

TINY_ACOUSTIC = {"acoustic_dim": 32, "encoder_width": 8, "decoder_width": 64}
TINY_UPSAMPLER = UpsamplerConfig(input_channels=96, dim=32, intermediate_dim=64, num_layers=2)


def require(path: Path) -> Path:
    """``path`` (under tests/fixtures), failing the test when the checkout lacks it."""
    assert path.exists(), f"{path} is missing from the checkout (tests/fixtures is tracked by git)"
    return path


def tiny_reference(seed: int = 0) -> OfficialXcodec:
    # The modules' own initialisation draws from the global generator: seed it (without disturbing the
    # caller's stream) so the tiny codec is the same whatever ran before it.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return OfficialXcodec(**TINY_ACOUSTIC, hubert=TINY_HUBERT).randomize(seed).eval()


def random_upsampler(cfg: UpsamplerConfig, seed: int) -> VocosUpsampler:
    torch.manual_seed(seed)
    up = VocosUpsampler(cfg).eval()
    with torch.no_grad():
        for name, p in up.named_parameters():
            if name.endswith("bias") or name.endswith("gamma"):
                p.normal_(0, 0.1)
    return up


def write_official_tree(root: Path, ref: OfficialXcodec, *, with_decoders: bool = True) -> dict[str, Path]:
    """The official download layout: final_ckpt/{ckpt_00360000.pth,config.yaml},
    semantic_ckpts/hf_1_325000/config.json, decoders/{config.yaml,decoder_131000.pth,decoder_151000.pth}.
    The checkpoint holds what a training snapshot holds besides the model: optimizer state, a step count,
    omegaconf config objects and a numpy scalar."""
    from omegaconf import OmegaConf

    (root / "final_ckpt").mkdir(parents=True)
    (root / "semantic_ckpts" / "hf_1_325000").mkdir(parents=True)
    codec_yaml = {
        "generator": {
            "name": "SoundStream",
            "config": {
                "n_filters": 32,
                "D": TINY_ACOUSTIC["acoustic_dim"],
                "target_bandwidths": [0.5, 1, 1.5, 2, 4, 6],
                "ratios": [8, 5, 4, 2],
                "sample_rate": 16000,
                "bins": 1024,
            },
        }
    }
    (root / "final_ckpt" / "config.yaml").write_text(yaml.safe_dump(codec_yaml))
    hub = {"model_type": "hubert", "architectures": ["HubertModel"], **TINY_HUBERT}
    (root / "semantic_ckpts" / "hf_1_325000" / "config.json").write_text(json.dumps(hub))
    sd = ref.official_state_dict()
    snapshot = {
        "codec_model": sd,
        "optimizer_g": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}},
            "param_groups": [{"lr": 2e-4, "betas": (0.8, 0.99)}],
        },
        "steps": 360000,
        "config": OmegaConf.create({"generator": codec_yaml["generator"], "lr": 0.0002}),
        "loss_scale": np.float64(1.0),
    }
    paths = {"ckpt": root / "final_ckpt" / "ckpt_00360000.pth"}
    torch.save(snapshot, paths["ckpt"])
    if with_decoders:
        (root / "decoders").mkdir()
        up_yaml = {
            "backbone": {
                "class_path": "vocos.models.VocosBackbone",
                "init_args": {"input_channels": 96, "dim": 32, "intermediate_dim": 64, "num_layers": 2},
            },
            "head": {
                "class_path": "vocos.heads.ISTFTHead",
                "init_args": {"dim": 32, "n_fft": 3528, "hop_length": 882, "padding": "same"},
            },
        }
        (root / "decoders" / "config.yaml").write_text(yaml.safe_dump(up_yaml))
        for name, seed in (("vocal", 1), ("inst", 2)):
            p = root / "decoders" / f"decoder_{131000 if name == 'vocal' else 151000}.pth"
            torch.save(random_upsampler(TINY_UPSAMPLER, seed).state_dict(), p)
            paths[name] = p
    return paths


@pytest.fixture(scope="session")
def tiny_ref() -> OfficialXcodec:
    return tiny_reference(0)


@pytest.fixture(scope="session")
def official_tree(tmp_path_factory, tiny_ref) -> dict[str, Path]:
    return write_official_tree(tmp_path_factory.mktemp("official"), tiny_ref)


@pytest.fixture(scope="session")
def codec_dir(tmp_path_factory, official_tree) -> Path:
    from yue_train.codec.convert_files import convert_official

    out = tmp_path_factory.mktemp("converted") / "codec"
    convert_official(
        official_tree["ckpt"], out, vocal_decoder=official_tree["vocal"], inst_decoder=official_tree["inst"]
    )
    return out


@pytest.fixture(scope="session")
def tiny_codec(codec_dir):
    from yue_train.codec.model import YueCodec

    return YueCodec.from_folder(codec_dir, device="cpu")


def music_like(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A few tones plus noise: never silent, (samples,) or (samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1234 * t) + 0.02 * rng.standard_normal(len(t))
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1).astype(np.float32)


def write_wav(path: Path, seconds: float, sr: int, channels: int = 1, seed: int = 0) -> Path:
    sf.write(str(path), music_like(seconds, sr, channels, seed), sr)
    return path
