"""Configurations of YuE's X-Codec ("xcodec_mini_infer") and its Vocos upsamplers.

The official configs are YAML (codec, upsampler) and a HuBERT ``config.json``. They are read as plain data
(``yaml.safe_load``/``json``); the official loader ``eval``s the generator class name, we never do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformers import XcodecConfig

# What YuE's released codec is (final_ckpt/config.yaml): SoundStream(n_filters=32, D=256, ratios 8-5-4-2,
# 16 kHz, 1024 bins, bandwidths 0.5..6 kbps -> 12 codebooks). The DAC encoder base width is hard-coded to 64
# and the DAC decoder width to 1024 inside the official model, so they are not in the YAML.
YUE_TARGET_BANDWIDTHS = (0.5, 1.0, 1.5, 2.0, 4.0, 6.0)
YUE_RATIOS = (8, 5, 4, 2)
YUE_ACOUSTIC_DIM = 256
YUE_ENCODER_WIDTH = 64
YUE_DECODER_WIDTH = 1024
YUE_SAMPLE_RATE = 16_000
YUE_CODEBOOK_SIZE = 1024

# HuBERT-base layout of semantic_ckpts/hf_1_325000/config.json, used when that file is not at hand. Only
# fields that change the architecture or the inference computation matter here.
HUBERT_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "feat_proj_layer_norm": True,
    "do_stable_layer_norm": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "layer_norm_eps": 1e-5,
    "mask_time_prob": 0.05,  # > 0 makes HubertModel own `masked_spec_embed`, a key of the official checkpoint
    "apply_spec_augment": True,
}

# Keys of a HF HuBERT config.json that are bookkeeping, not architecture.
_HUBERT_DROP = {"architectures", "transformers_version", "torch_dtype", "_name_or_path", "model_type"}


def read_yaml(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def hubert_config_from_json(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("model_type", "hubert") != "hubert":
        raise ValueError(f"{path}: semantic model must be HuBERT, got model_type={data.get('model_type')!r}")
    return {k: v for k, v in data.items() if k not in _HUBERT_DROP}


def generator_params(codec_yaml: dict[str, Any], source: str = "codec config") -> dict[str, Any]:
    """The ``generator.config`` block of the official codec YAML, checked to be the SoundStream YuE uses."""
    gen = codec_yaml.get("generator")
    if not isinstance(gen, dict) or not isinstance(gen.get("config"), dict):
        raise ValueError(f"{source}: no generator.config block")
    if gen.get("name") != "SoundStream":
        raise ValueError(f"{source}: generator {gen.get('name')!r} is not the X-Codec SoundStream")
    return dict(gen["config"])


def yue_xcodec_config(
    generator: dict[str, Any] | None = None,
    semantic: dict[str, Any] | None = None,
    *,
    acoustic_overrides: dict[str, Any] | None = None,
) -> XcodecConfig:
    """``XcodecConfig`` for YuE's codec.

    ``generator`` is the official ``generator.config`` block (defaults: the released values); ``semantic`` a
    HuBERT config dict (default: HuBERT-base). ``acoustic_overrides`` shrinks the DAC parts for tests.
    """
    gen = {"D": YUE_ACOUSTIC_DIM, "target_bandwidths": list(YUE_TARGET_BANDWIDTHS), "ratios": list(YUE_RATIOS)}
    gen.update({"sample_rate": YUE_SAMPLE_RATE, "bins": YUE_CODEBOOK_SIZE})
    gen.update(generator or {})
    ratios = [int(r) for r in gen["ratios"]]
    acoustic = {
        "encoder_hidden_size": YUE_ENCODER_WIDTH,
        "downsampling_ratios": ratios,
        "decoder_hidden_size": YUE_DECODER_WIDTH,
        "upsampling_ratios": ratios,
        "hidden_size": int(gen["D"]),
        "sampling_rate": int(gen["sample_rate"]),
    }
    acoustic.update(acoustic_overrides or {})
    semantic_cfg = dict(HUBERT_BASE)
    semantic_cfg.update(semantic or {})
    semantic_cfg["model_type"] = "hubert"
    cfg = XcodecConfig(
        target_bandwidths=[float(b) for b in gen["target_bandwidths"]],
        sample_rate=int(gen["sample_rate"]),
        codebook_size=int(gen["bins"]),
        acoustic_model_config={"model_type": "dac", **acoustic},
        semantic_model_config=semantic_cfg,
    )
    # The official model sizes its RVQ with log2(bins) bits at ceil(sr / hop) frames per second; a mismatch
    # with transformers' own formula would silently drop codebooks.
    hop = math.prod(ratios)
    n_q = int(1000 * cfg.target_bandwidths[-1] // (math.ceil(cfg.sample_rate / hop) * math.log2(cfg.codebook_size)))
    if cfg.num_quantizers != n_q:
        raise ValueError(f"codebook count mismatch: transformers {cfg.num_quantizers} vs official {n_q}")
    return cfg


def official_xcodec_config(codec_yaml: str | Path, hubert_json: str | Path | None = None) -> XcodecConfig:
    """Config from the official files (``final_ckpt/config.yaml`` and optionally the HuBERT ``config.json``)."""
    gen = generator_params(read_yaml(codec_yaml), str(codec_yaml))
    semantic = hubert_config_from_json(hubert_json) if hubert_json else None
    return yue_xcodec_config(gen, semantic)


@dataclass
class UpsamplerConfig:
    """Vocos decoder (ConvNeXt backbone + ISTFT head) of ``decoders/config.yaml``."""

    input_channels: int = 1024
    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    n_fft: int = 3528
    hop_length: int = 882
    padding: str = "same"
    sample_rate: int = 44_100
    layer_scale_init_value: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpsamplerConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def from_official_yaml(cls, path: str | Path) -> UpsamplerConfig:
        data = read_yaml(path)
        try:
            backbone, head = data["backbone"], data["head"]
            b_args, h_args = backbone["init_args"], head["init_args"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: expected backbone/head blocks with init_args ({e})") from e
        if not str(backbone.get("class_path", "")).endswith("VocosBackbone"):
            raise ValueError(f"{path}: backbone {backbone.get('class_path')!r} is not a VocosBackbone")
        if not str(head.get("class_path", "")).endswith("ISTFTHead"):
            raise ValueError(f"{path}: head {head.get('class_path')!r} is not an ISTFTHead")
        if b_args.get("adanorm_num_embeddings"):
            raise ValueError(f"{path}: AdaLayerNorm-conditioned backbones are not supported")
        return cls(
            input_channels=int(b_args["input_channels"]),
            dim=int(b_args["dim"]),
            intermediate_dim=int(b_args["intermediate_dim"]),
            num_layers=int(b_args["num_layers"]),
            n_fft=int(h_args["n_fft"]),
            hop_length=int(h_args["hop_length"]),
            padding=str(h_args.get("padding", "same")),
            layer_scale_init_value=b_args.get("layer_scale_init_value"),
        )
