"""The Vocos upsampler YuE uses to turn X-Codec embeddings (50 Hz) into 44.1 kHz audio.

Written here because the pip ``vocos`` package depends on torchaudio, which does not install beside our
torch. Module and attribute names follow the official ``VocosDecoder`` (``backbone.embed``,
``backbone.convnext.N.dwconv`` ..., ``head.out``, ``head.istft.window``) so the released
``decoder_131000.pth`` / ``decoder_151000.pth`` state dicts load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yue_train.codec.config import UpsamplerConfig


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> MLP -> layer scale, with a residual connection."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim)) if layer_scale > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        self.embed = nn.Conv1d(cfg.input_channels, cfg.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        scale = cfg.layer_scale_init_value or 1 / cfg.num_layers
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, scale) for _ in range(cfg.num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(cfg.dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, T, dim)."""
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding: T frames -> exactly T * hop samples.

    ``torch.istft`` only supports ``center=True`` padding (its NOLA check fails at untrimmed edges), so the
    overlap-add and window-envelope normalisation are done by hand, trimming (n_fft - hop) / 2 at each end.
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError(f"ISTFT padding must be 'same' or 'center', got {padding!r}")
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, n_fft//2+1, T) complex -> (B, samples)."""
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True)
        n_frames = spec.shape[-1]
        pad = (self.n_fft - self.hop_length) // 2
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        total = (n_frames - 1) * self.hop_length + self.n_fft
        fold = {"output_size": (1, total), "kernel_size": (1, self.n_fft), "stride": (1, self.hop_length)}
        audio = F.fold(frames, **fold)[:, 0, 0, pad : total - pad]
        win_sq = self.window.square()[None, :, None].expand(1, -1, n_frames)
        envelope = F.fold(win_sq, **fold)[0, 0, 0, pad : total - pad]
        return audio / envelope.clamp_min(1e-11)


class ISTFTHead(nn.Module):
    """Linear layer -> log-magnitude and phase -> complex spectrum -> ISTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out(x).transpose(1, 2)
        if x.dtype in (torch.float16, torch.bfloat16):  # the FFT needs float32 or float64
            x = x.float()
        log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)  # the official clip against exploding magnitudes
        return self.istft(torch.polar(mag, phase))


class VocosUpsampler(nn.Module):
    """Summed RVQ embedding (B, 1024, T) at 50 Hz -> (B, T * 882) samples at 44.1 kHz."""

    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        self.config = cfg
        self.backbone = VocosBackbone(cfg)
        self.head = ISTFTHead(cfg.dim, cfg.n_fft, cfg.hop_length, cfg.padding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(features))
