"""Official YuE codec files -> state dicts of our modules, and the converted folder layout.

Official ``ckpt_00360000.pth`` holds ``{"codec_model": state_dict, ...}`` with the X-Codec training code's
module names (``encoder.block.N``, ``decoder_2.model.N``, ``quantizer.vq.layers.N._codebook``, ...) and
old-style weight norm (``weight_g``/``weight_v``). We rename to transformers' ``XcodecModel`` and fold the
weight norm of the DAC convolutions into plain weights with ``torch._weight_norm`` (the op the official
model runs at every forward, so the folded weights give the same numbers). HuBERT keeps its weight-norm
parametrisation, as transformers' ``HubertModel`` has one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from yue_train.codec.config import UpsamplerConfig, yue_xcodec_config


class CheckpointLayoutError(ValueError):
    """Keys or shapes of a checkpoint are not what the architecture needs."""


# DAC residual unit: Sequential(Snake, WNConv(k7), Snake, WNConv(k1)).
_RES_UNIT = {"0": "snake1", "1": "conv1", "2": "snake2", "3": "conv2"}


def _dac_stack_name(rest: str, stack: str, n_blocks: int, block_part) -> str | None:
    """Map one official DAC stack key (``{stack}.I.…``: conv, ``n_blocks`` blocks, Snake, conv) to
    transformers' names; ``block_part(b, j, tail)`` names part ``j`` of block ``b`` (0-based)."""
    m = re.fullmatch(rf"{stack}\.(\d+)\.(.+)", rest)
    if not m:
        return None
    i, tail = int(m.group(1)), m.group(2)
    ends = {0: "conv1", n_blocks + 1: "snake1", n_blocks + 2: "conv2"}
    if i in ends:
        return f"{ends[i]}.{tail}"
    m2 = re.fullmatch(r"block\.(\d+)\.(.+)", tail)
    if not m2 or not 1 <= i <= n_blocks:
        return None
    return block_part(i - 1, int(m2.group(1)), m2.group(2))


def _res_unit_name(b: int, unit: int, tail: str) -> str | None:
    m = re.fullmatch(r"block\.(\d)\.(.+)", tail)
    return f"block.{b}.res_unit{unit}.{_RES_UNIT[m.group(1)]}.{m.group(2)}" if m else None


def _acoustic_encoder_name(rest: str, n_blocks: int) -> str | None:
    """``encoder.block.*`` (official Sequential) -> ``acoustic_encoder.*`` (transformers' DacEncoder)."""

    def part(b: int, j: int, tail: str) -> str | None:
        if j <= 2:  # three residual units, then Snake and the strided conv
            return _res_unit_name(b, j + 1, tail)
        return {3: f"block.{b}.snake1.{tail}", 4: f"block.{b}.conv1.{tail}"}.get(j)

    return _dac_stack_name(rest, "block", n_blocks, part)


def _acoustic_decoder_name(rest: str, n_blocks: int) -> str | None:
    """``decoder_2.model.*`` -> ``acoustic_decoder.*``."""

    def part(b: int, j: int, tail: str) -> str | None:
        if j == 0:  # Snake and the transposed conv, then three residual units
            return f"block.{b}.snake1.{tail}"
        if j == 1:
            return f"block.{b}.conv_t1.{tail}"
        return _res_unit_name(b, j - 1, tail) if j <= 4 else None

    return _dac_stack_name(rest, "model", n_blocks, part)


def _semantic_coder_name(rest: str) -> str:
    """RepCodec wraps every conv in a ``.conv`` attribute that transformers does not have."""
    return re.sub(r"(^|\.)(conv|conv1|conv2)\.conv\.", r"\1\2.", rest)


def official_to_hf_name(key: str, n_blocks: int = 4) -> str | None:
    """Name in transformers' ``XcodecModel`` of an official ``codec_model`` key (``weight_g``/``_v`` kept)."""
    head, _, rest = key.partition(".")
    if head == "encoder":
        new = _acoustic_encoder_name(rest, n_blocks)
        return f"acoustic_encoder.{new}" if new else None
    if head == "decoder_2":
        new = _acoustic_decoder_name(rest, n_blocks)
        return f"acoustic_decoder.{new}" if new else None
    if head in ("encoder_semantic", "decoder_semantic"):
        return f"{head}.{_semantic_coder_name(rest)}"
    if head == "quantizer":
        m = re.fullmatch(r"vq\.layers\.(\d+)\._codebook\.(inited|cluster_size|embed|embed_avg)", rest)
        return f"quantizer.quantizers.{m.group(1)}.codebook.{m.group(2)}" if m else None
    if head in ("fc_prior", "fc_post1", "fc_post2"):
        return {"fc_prior": "fc", "fc_post1": "fc1", "fc_post2": "fc2"}[head] + "." + rest
    if head == "semantic_model":
        rest = rest.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
        rest = rest.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        return f"semantic_model.{rest}"
    return None


def _n_blocks(official: Mapping[str, Any]) -> int:
    return len({k.split(".")[2] for k in official if re.match(r"encoder\.block\.\d+\.block\.", k)})


def official_names(official: Mapping[str, Any]) -> dict[str, str]:
    """``XcodecModel`` name -> official name(s), for error messages in the user's terms."""
    n_blocks, out = _n_blocks(official), {}
    for key in official:
        new = official_to_hf_name(key, n_blocks)
        if new is not None:
            new = re.sub(r"\.weight_[gv]$", ".weight", new)
            out[new] = re.sub(r"\.weight_[gv]$", ".weight_g/_v", key)
    return out


def convert_codec_state_dict(official: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Rename an official ``codec_model`` state dict to ``XcodecModel`` names, folding DAC weight norm."""
    n_blocks = _n_blocks(official)
    out: dict[str, torch.Tensor] = {}
    pending_g: dict[str, torch.Tensor] = {}
    pending_v: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in official.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointLayoutError(f"{source}: {key} is a {type(value).__name__}, not a tensor")
        new = official_to_hf_name(key, n_blocks)
        if new is None:
            unknown.append(key)
        elif new.endswith(".weight_g"):
            pending_g[new[: -len("_g")]] = value
        elif new.endswith(".weight_v"):
            pending_v[new[: -len("_v")]] = value
        else:
            out[new] = value
    if unknown:
        raise CheckpointLayoutError(f"{source}: {len(unknown)} keys are not X-Codec keys, e.g. {unknown[:5]}")
    for name in sorted(set(pending_g) | set(pending_v)):
        if name not in pending_g or name not in pending_v:
            raise CheckpointLayoutError(f"{source}: weight norm of {name} has only one of weight_g/weight_v")
        g, v = pending_g[name], pending_v[name]
        if g.dim() != v.dim() or g.shape[0] != v.shape[0] or any(s != 1 for s in g.shape[1:]):
            raise CheckpointLayoutError(
                f"{source}: {name}: weight_g {tuple(g.shape)} does not fit weight_v {tuple(v.shape)}"
            )
        out[name] = torch._weight_norm(v, g, 0)
    return out


def infer_xcodec_config(
    official: Mapping[str, torch.Tensor],
    generator: dict[str, Any] | None = None,
    semantic_overrides: dict[str, Any] | None = None,
) -> Any:
    """``XcodecConfig`` sized from the tensors of an official state dict.

    The official YAML (``generator``), when given, supplies the bandwidths; ratios and widths are read from
    the weights and cross-checked. What weights cannot show (HuBERT's head count, epsilons) comes from the
    HuBERT ``config.json`` (``semantic_overrides``) or the HuBERT-base defaults (64-wide heads).
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in official:
            raise CheckpointLayoutError(f"missing key {key}: not an X-Codec checkpoint")
        return tuple(official[key].shape)

    enc_blocks = sorted({int(k.split(".")[2]) for k in official if re.match(r"encoder\.block\.\d+\.block\.", k)})
    ratios = [shape(f"encoder.block.{i}.block.4.weight_v")[2] // 2 for i in enc_blocks]
    # sizes from the start of each branch; the heads (fc_*) are then checked against them, not read
    d_acoustic = shape(f"encoder.block.{len(enc_blocks) + 2}.weight_v")[0]
    sem_hidden = shape("semantic_model.feature_projection.projection.weight")[0]
    n_q = len({k for k in official if re.match(r"quantizer\.vq\.layers\.\d+\._codebook\.embed$", k)})
    n_layers = len({k.split(".")[3] for k in official if k.startswith("semantic_model.encoder.layers.")})
    conv_ids = sorted(
        {int(k.split(".")[3]) for k in official if k.startswith("semantic_model.feature_extractor.conv_layers.")}
    )
    conv_shapes = [shape(f"semantic_model.feature_extractor.conv_layers.{i}.conv.weight") for i in conv_ids]
    pos = shape("semantic_model.encoder.pos_conv_embed.conv.weight_v")
    semantic = {
        "hidden_size": sem_hidden,
        "num_hidden_layers": n_layers,
        "intermediate_size": shape("semantic_model.encoder.layers.0.feed_forward.intermediate_dense.weight")[0],
        "conv_dim": [s[0] for s in conv_shapes],
        "conv_kernel": [s[2] for s in conv_shapes],
        "num_conv_pos_embeddings": pos[2],
        "num_conv_pos_embedding_groups": sem_hidden // pos[1],
    }
    for key, value in (semantic_overrides or {}).items():
        if key in semantic and semantic[key] != value:
            raise CheckpointLayoutError(
                f"semantic config {key}={value!r} differs from the checkpoint's {semantic[key]!r}"
            )
        semantic[key] = value
    semantic.setdefault(
        "num_attention_heads", max(1, sem_hidden // 64)
    )  # not visible in weights: HuBERT's 64-wide heads
    codebook = shape("quantizer.vq.layers.0._codebook.embed")
    gen = dict(generator or {})
    for key, found in (("ratios", ratios), ("D", d_acoustic), ("bins", codebook[0])):
        given = [int(r) for r in gen[key]] if key == "ratios" and key in gen else gen.get(key)
        if given is not None and given != found:
            raise CheckpointLayoutError(f"config {key}={gen[key]} differs from the checkpoint's {found}")
    gen.update({"ratios": ratios, "D": d_acoustic, "bins": codebook[0]})
    gen.setdefault("target_bandwidths", [0.5, 1.0, 1.5, 2.0, 4.0, 6.0][: max(1, n_q)])
    acoustic = {
        "encoder_hidden_size": shape("encoder.block.0.weight_v")[0],
        "decoder_hidden_size": shape("decoder_2.model.0.weight_v")[0],
    }
    cfg = yue_xcodec_config(gen, semantic, acoustic_overrides=acoustic)
    if cfg.num_quantizers != n_q:
        raise CheckpointLayoutError(
            f"checkpoint has {n_q} codebooks but bandwidths {gen['target_bandwidths']} give {cfg.num_quantizers}"
        )
    return cfg


def check_layout(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    source: str,
    names: Mapping[str, str] | None = None,
) -> None:
    """Raise naming every missing, unexpected and wrongly shaped key (strict loading, but all at once).
    ``names`` maps keys to the names the user's file has (see :func:`official_names`)."""
    names = names or {}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(names.get(k, k) for k in set(state) - set(expected))
    wrong = [
        f"{names.get(k, k)}: {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"{len(wrong)} wrong shapes (e.g. {wrong[:3]})")
        raise CheckpointLayoutError(f"{source}: " + "; ".join(parts))


def extract_codec_state(ckpt: Any, source: str) -> dict[str, torch.Tensor]:
    """The ``codec_model`` state dict of an official training snapshot (or a bare state dict)."""
    if isinstance(ckpt, Mapping) and "codec_model" in ckpt:
        ckpt = ckpt["codec_model"]
    if not isinstance(ckpt, Mapping) or not ckpt:
        raise CheckpointLayoutError(f"{source}: no 'codec_model' state dict in the checkpoint")
    return dict(ckpt)


def extract_upsampler_state(ckpt: Any, source: str) -> dict[str, torch.Tensor]:
    """A Vocos decoder state dict (the released ``decoder_*.pth`` are bare state dicts)."""
    for wrapper in ("state_dict", "model"):  # Lightning / generic wrappers
        if isinstance(ckpt, Mapping) and wrapper in ckpt and isinstance(ckpt[wrapper], Mapping):
            ckpt = ckpt[wrapper]
    if not isinstance(ckpt, Mapping) or not any(str(k).startswith("backbone.") for k in ckpt):
        raise CheckpointLayoutError(f"{source}: not a Vocos decoder state dict (no backbone.* keys)")
    # Lightning checkpoints of the full experiment also hold the feature extractor and discriminators.
    return {k: v for k, v in ckpt.items() if k.startswith(("backbone.", "head."))}


def infer_upsampler_config(state: Mapping[str, torch.Tensor], base: UpsamplerConfig | None = None) -> UpsamplerConfig:
    """Widths and depth from the weights; hop length and padding (not visible in weights) from ``base``."""
    base = base or UpsamplerConfig()
    try:
        embed = state["backbone.embed.weight"].shape
        inter = state["backbone.convnext.0.pwconv1.weight"].shape
        out = state["head.out.weight"].shape
    except KeyError as e:
        raise CheckpointLayoutError(f"Vocos decoder state dict lacks {e}") from e
    n_layers = len({k.split(".")[2] for k in state if k.startswith("backbone.convnext.")})
    return UpsamplerConfig(
        input_channels=embed[1],
        dim=embed[0],
        intermediate_dim=inter[0],
        num_layers=n_layers,
        n_fft=out[0] - 2,
        hop_length=base.hop_length,
        padding=base.padding,
        sample_rate=base.sample_rate,
        layer_scale_init_value=base.layer_scale_init_value,
    )
