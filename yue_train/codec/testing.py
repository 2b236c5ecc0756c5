"""Random-weight codec folders for tests, demos and benchmarks (no download, real frame arithmetic).

"tiny" narrows every layer (HuBERT 2 x 64, DAC 8..64 channels) but keeps YuE's strides, hop (320), frame
rate, codebook count and size; "full" is the released architecture. transformers initialises the RVQ
codebooks to zeros, which would map every frame to code 0, so they get random unit-norm rows: the nearest
code then follows the input's direction and real audio spreads over many codes, as with trained weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_HUBERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "conv_dim": [32] * 7,
}


def random_codec(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random codec (X-Codec only, no upsamplers) to ``folder``; returns the folder."""
    from yue_train.codec.config import yue_xcodec_config
    from yue_train.codec.model import YueCodec, build_xcodec

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    torch.manual_seed(seed)
    if size == "tiny":
        cfg = yue_xcodec_config(
            generator={"D": 32},
            semantic=TINY_HUBERT,
            acoustic_overrides={"encoder_hidden_size": 8, "decoder_hidden_size": 64},
        )
    else:
        cfg = yue_xcodec_config()
    model = build_xcodec(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("codebook.embed"):
                e = torch.randn(b.shape, generator=g)
                b.copy_(e / e.norm(dim=1, keepdim=True))
    return YueCodec(model, device="cpu").save(folder, provenance={"random": True, "size": size, "seed": seed})
