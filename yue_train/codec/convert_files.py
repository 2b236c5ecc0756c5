"""Official YuE codec files on disk -> a converted, self-describing codec folder (see ``model.py``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from yue_train.codec.config import (
    UpsamplerConfig,
    generator_params,
    hubert_config_from_json,
    read_yaml,
)
from yue_train.codec.convert import (
    CheckpointLayoutError,
    convert_codec_state_dict,
    extract_codec_state,
    extract_upsampler_state,
    infer_upsampler_config,
    infer_xcodec_config,
    official_names,
)
from yue_train.codec.model import YueCodec, build_upsampler, build_xcodec, load_strict
from yue_train.format.provenance import file_fingerprint
from yue_train.safe_pickle import Allowlist, restricted_torch_load

log = logging.getLogger(__name__)


# The official X-Codec checkpoint is a full training snapshot: beside the tensors it pickles omegaconf configs,
# numpy scalars and the like, which load as inert data (stubbed, never run).
SNAPSHOT_INERT_MODULES = ("omegaconf", "typing", "numpy", "pathlib", "argparse", "enum")


def snapshot_allowlist(inert_globals: tuple[str, ...] = ()) -> Allowlist:
    """What the official codec and upsampler files may name; ``inert_globals``: more classes to stub."""
    return Allowlist(
        inert=SNAPSHOT_INERT_MODULES + tuple(inert_globals),
        hint="If you trust the file and this name is pure data, allow it as inert (stubbed, never executed) with "
        "--allow-data-class {qualname}",
    )


def _beside(path: Path, *candidates: str) -> Path | None:
    """Official layout: final_ckpt/config.yaml beside the ckpt, decoders/config.yaml beside the decoders,
    semantic_ckpts/hf_1_325000/config.json one level up."""
    for rel in candidates:
        p = path.parent / rel
        if p.is_file():
            return p
    return None


def load_official_upsampler(path: str | Path, base: UpsamplerConfig | None, inert_globals: tuple[str, ...] = ()):
    path = Path(path)
    state = extract_upsampler_state(restricted_torch_load(path, snapshot_allowlist(inert_globals)), str(path))
    cfg = infer_upsampler_config(state, base)
    state.setdefault("head.istft.window", torch.hann_window(cfg.n_fft))  # a buffer; rebuilt if not saved
    up = build_upsampler(cfg, empty=True)
    load_strict(up, state, str(path))
    return up


def convert_official(
    xcodec_ckpt: str | Path,
    out_dir: str | Path,
    *,
    vocal_decoder: str | Path | None = None,
    inst_decoder: str | Path | None = None,
    codec_config: str | Path | None = None,
    semantic_config: str | Path | None = None,
    upsampler_config: str | Path | None = None,
    inert_globals: tuple[str, ...] = (),
    hash_sources: bool = True,
) -> YueCodec:
    """Convert the official checkpoint (and optionally the two Vocos decoders) into ``out_dir``.

    Configs default to the official files found beside the checkpoints; sizes are always read from the
    weights and cross-checked against them. Returns the loaded codec (on CPU).
    """
    ckpt_path = Path(xcodec_ckpt)
    codec_config = Path(codec_config) if codec_config else _beside(ckpt_path, "config.yaml")
    semantic_config = (
        Path(semantic_config)
        if semantic_config
        else _beside(ckpt_path, "../semantic_ckpts/hf_1_325000/config.json", "semantic_config.json")
    )
    generator = generator_params(read_yaml(codec_config), str(codec_config)) if codec_config else None
    semantic = hubert_config_from_json(semantic_config) if semantic_config else None

    official = extract_codec_state(restricted_torch_load(ckpt_path, snapshot_allowlist(inert_globals)), str(ckpt_path))
    try:
        config = infer_xcodec_config(official, generator, semantic)
    except CheckpointLayoutError as e:
        raise CheckpointLayoutError(f"{ckpt_path}: {e}") from e
    model = build_xcodec(config, empty=True)
    load_strict(model, convert_codec_state_dict(official, str(ckpt_path)), str(ckpt_path), official_names(official))

    ups = {}
    sources: dict[str, Any] = {
        "xcodec_ckpt": ckpt_path,
        "codec_config": codec_config,
        "semantic_config": semantic_config,
    }
    decoders = {"vocal": vocal_decoder, "inst": inst_decoder}
    if any(decoders.values()):
        first = next(Path(p) for p in decoders.values() if p)
        up_cfg_path = Path(upsampler_config) if upsampler_config else _beside(first, "config.yaml")
        base = UpsamplerConfig.from_official_yaml(up_cfg_path) if up_cfg_path else None
        sources["upsampler_config"] = up_cfg_path
        for track, path in decoders.items():
            if path:
                ups[track] = load_official_upsampler(path, base, inert_globals)
                sources[f"{track}_decoder"] = Path(path)
    provenance = {
        name: {"file": str(p), **({"sha256": file_fingerprint(p)} if hash_sources else {})}
        for name, p in sources.items()
        if p is not None
    }
    codec = YueCodec(model, ups, device="cpu")
    codec.save(out_dir, provenance)
    log.info("converted %s -> %s (%d codebooks, upsamplers: %s)", ckpt_path, out_dir, codec.n_codebooks, list(ups))
    return codec
