"""An independent statement of the official X-Codec (xcodec_mini_infer ``SoundStream``) for tests.

Module names reproduce the official ``codec_model`` state dict (checked against
``tests/fixtures/xcodec_mini_infer/codec_state_dict_keys_shapes.json``), with old-style weight norm as
in the released file. ``encode``/``decode`` restate the official algorithm: semantic features = mean of all
HuBERT hidden states on the 160+160-padded input; acoustic encoder re-run on the padded input when frame
counts differ; residual quantisation by exact nearest codebook vector.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import weight_norm as _legacy_weight_norm
from transformers import HubertConfig, HubertModel

from yue_train.codec.config import HUBERT_BASE


def weight_norm(module: nn.Module) -> nn.Module:
    """Old-style weight norm (weight_g / weight_v), as the released checkpoint was saved with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _legacy_weight_norm(module)


def _wn_conv(*args, **kwargs) -> nn.Module:
    return weight_norm(nn.Conv1d(*args, **kwargs))


class Snake(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x):
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


class DacResidual(nn.Module):
    def __init__(self, dim: int, dilation: int):
        super().__init__()
        pad = 3 * dilation
        self.block = nn.Sequential(
            Snake(dim), _wn_conv(dim, dim, 7, dilation=dilation, padding=pad), Snake(dim), _wn_conv(dim, dim, 1)
        )

    def forward(self, x):
        y = self.block(x)
        crop = (x.shape[-1] - y.shape[-1]) // 2
        return (x[..., crop:-crop] if crop > 0 else x) + y


class Block(nn.Module):
    """DAC encoder/decoder blocks keep their layers in a ``.block`` Sequential."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class DacEncoder(nn.Module):
    def __init__(self, width: int, ratios: list[int], latent: int):
        super().__init__()
        layers = [_wn_conv(1, width, 7, padding=3)]
        for stride in ratios:
            layers.append(
                Block(
                    DacResidual(width, 1),
                    DacResidual(width, 3),
                    DacResidual(width, 9),
                    Snake(width),
                    _wn_conv(width, width * 2, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
                )
            )
            width *= 2
        layers += [Snake(width), _wn_conv(width, latent, 3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class DacDecoder(nn.Module):
    def __init__(self, latent: int, width: int, ratios: list[int]):
        super().__init__()
        layers = [_wn_conv(latent, width, 7, padding=3)]
        for i, stride in enumerate(ratios):
            cin, cout = width // 2**i, width // 2 ** (i + 1)
            up = nn.ConvTranspose1d(
                cin, cout, 2 * stride, stride=stride, padding=math.ceil(stride / 2), output_padding=1 if i == 1 else 0
            )
            layers.append(
                Block(Snake(cin), weight_norm(up), DacResidual(cout, 1), DacResidual(cout, 3), DacResidual(cout, 9))
            )
        layers += [Snake(cout), _wn_conv(cout, 1, 7, padding=3)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RConv(nn.Module):
    """RepCodec's conv wrapper (an extra ``.conv`` level in the key names)."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2, bias=bias)

    def forward(self, x):
        return self.conv(x)


class RResidual(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.activation = nn.ELU()
        self.conv1 = RConv(dim, dim, 3, bias=False)
        self.conv2 = nn.Conv1d(dim, dim, 1, bias=False)

    def forward(self, x):
        return x + self.conv2(self.activation(self.conv1(self.activation(x))))


class RBlock(nn.Module):
    def __init__(self, dim: int, decoder: bool):
        super().__init__()
        if decoder:  # decoder blocks: conv first (module order = key order of the official file)
            self.conv = RConv(dim, dim, 3, bias=True)
            self.res_units = nn.ModuleList([RResidual(dim), RResidual(dim)])
        else:
            self.res_units = nn.ModuleList([RResidual(dim), RResidual(dim)])
            self.conv = RConv(dim, dim, 3, bias=True)
        self.decoder = decoder

    def forward(self, x):
        if self.decoder:
            x = self.conv(x)
        for unit in self.res_units:
            x = unit(x)
        return x if self.decoder else self.conv(x)


class SemanticEncoder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = RConv(dim, dim, 3, bias=False)
        self.conv_blocks = nn.ModuleList([RBlock(dim, False), RBlock(dim, False)])

    def forward(self, x):
        x = self.conv(x)
        for block in self.conv_blocks:
            x = block(x)
        return x


class SemanticDecoder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = RConv(dim, dim, 3, bias=False)
        self.conv_blocks = nn.ModuleList([RBlock(dim, True), RBlock(dim, True)])
        self.conv2 = RConv(dim, dim, 3, bias=False)


class Codebook(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("inited", torch.Tensor([True]))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))


class VQ(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self._codebook = Codebook(size, dim)


class RVQ(nn.Module):
    def __init__(self, n_q: int, size: int, dim: int):
        super().__init__()
        self.layers = nn.ModuleList([VQ(size, dim) for _ in range(n_q)])


class Quantizer(nn.Module):
    def __init__(self, n_q: int, size: int, dim: int):
        super().__init__()
        self.vq = RVQ(n_q, size, dim)


class OfficialXcodec(nn.Module):
    """Official module tree; defaults are the released sizes (D=256, HuBERT-base, 12 x 1024 codebooks)."""

    def __init__(
        self,
        *,
        acoustic_dim: int = 256,
        encoder_width: int = 64,
        decoder_width: int = 1024,
        ratios: tuple[int, ...] = (8, 5, 4, 2),
        n_q: int = 12,
        bins: int = 1024,
        hubert: dict | None = None,
    ):
        super().__init__()
        hub = dict(HUBERT_BASE)
        hub.update(hubert or {})
        sem = hub["hidden_size"]
        self.encoder = DacEncoder(encoder_width, list(ratios), acoustic_dim)
        self.encoder_semantic = SemanticEncoder(sem)
        self.decoder_semantic = SemanticDecoder(sem)
        self.quantizer = Quantizer(n_q, bins, acoustic_dim + sem)
        self.decoder_2 = DacDecoder(acoustic_dim, decoder_width, list(ratios))
        self.semantic_model = HubertModel(HubertConfig(**hub)).eval()
        self.fc_prior = nn.Linear(acoustic_dim + sem, acoustic_dim + sem)
        self.fc_post1 = nn.Linear(acoustic_dim + sem, sem)
        self.fc_post2 = nn.Linear(acoustic_dim + sem, acoustic_dim)

    def randomize(self, seed: int) -> OfficialXcodec:
        """Random values everywhere, weight-norm gains included, codebooks spread like trained ones."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("weight_g") or "original0" in name:
                    p.mul_(0.5 + torch.rand(p.shape, generator=g))
                elif name.endswith("alpha"):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                elif name.endswith("bias"):
                    p.copy_(0.02 * torch.randn(p.shape, generator=g))
            for layer in self.quantizer.vq.layers:
                cb = layer._codebook
                # equal-norm rows: the nearest vector then depends on the input's direction, so random
                # inputs spread over many codes instead of all picking the shortest vector
                embed = torch.randn(cb.embed.shape, generator=g)
                cb.embed.copy_(embed / embed.norm(dim=1, keepdim=True))
                cb.embed_avg.copy_(torch.randn(cb.embed.shape, generator=g))
                cb.cluster_size.copy_(torch.rand(cb.cluster_size.shape, generator=g) * 10)
        return self

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict as released: HuBERT's positional conv under the legacy weight_g / weight_v names."""
        out = {}
        for k, v in self.state_dict().items():
            k = k.replace("conv.parametrizations.weight.original0", "conv.weight_g")
            k = k.replace("conv.parametrizations.weight.original1", "conv.weight_v")
            out[k] = v
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int) -> torch.Tensor:
        """(B, 1, L) -> (B, n_q, T)."""
        padded = F.pad(x[:, 0, :], (160, 160))
        hidden = self.semantic_model(padded, output_hidden_states=True).hidden_states
        e_sem = self.encoder_semantic(torch.stack(hidden, dim=1).mean(dim=1).transpose(1, 2))
        e_ac = self.encoder(x)
        if e_ac.shape[2] != e_sem.shape[2]:
            e_ac = self.encoder(padded[:, None, :])
        e = self.fc_prior(torch.cat([e_ac, e_sem], dim=1).transpose(1, 2))  # (B, T, D)
        residual, codes = e, []
        for layer in self.quantizer.vq.layers[:n_q]:
            embed = layer._codebook.embed
            dist = torch.cdist(
                residual, embed[None].expand(len(residual), -1, -1), compute_mode="donot_use_mm_for_euclid_dist"
            )
            idx = dist.argmin(dim=-1)
            residual = residual - embed[idx]
            codes.append(idx)
        return torch.stack(codes, dim=1)

    @torch.no_grad()
    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, K, T) -> (B, D, T): sum of the chosen codebook vectors."""
        total = sum(
            layer._codebook.embed[codes[:, k]] for k, layer in enumerate(self.quantizer.vq.layers[: codes.shape[1]])
        )
        return total.transpose(1, 2)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        q = self.embed(codes)
        return self.decoder_2(self.fc_post2(q.transpose(1, 2)).transpose(1, 2))
