"""``YueCodec``: YuE's X-Codec (transformers' ``XcodecModel``) plus the two Vocos upsamplers, loaded from a
converted folder, with chunked and batched encode/decode.

Converted folder (``yue-prep convert-codec``)::

    yue_codec.json                 format tag, XcodecConfig, upsampler configs, provenance
    xcodec.safetensors             XcodecModel state dict (weight norm folded)
    upsampler_vocal.safetensors    Vocos decoder for vocals   (optional)
    upsampler_inst.safetensors     Vocos decoder for the accompaniment (optional)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import XcodecConfig, XcodecModel

from yue_train.codec.config import UpsamplerConfig
from yue_train.codec.convert import CheckpointLayoutError, check_layout
from yue_train.codec.folder import MANIFEST, check_codec_folder
from yue_train.codec.vocos import VocosUpsampler
from yue_train.devices import resolve_device
from yue_train.format import codec_layout as cl
from yue_train.format.bounded_json import field as json_field
from yue_train.format.bounded_json import read_json_object
from yue_train.progress import Advance

FOLDER_FORMAT = "yue-codec"
FOLDER_VERSION = 1
HOP = 320  # 16 kHz samples per frame


class CodesError(cl.CodecRangeError):
    """Codes that cannot be decoded; the message names where they came from."""


@dataclass
class ChunkPlan:
    """Encode-time chunking. Windows start on frame boundaries; ``context`` frames of audio on each side of
    a chunk are encoded and dropped, so frames near a cut still see their neighbours."""

    chunk_frames: int = 3000  # 60 s: a whole YuE reference or song section is encoded in one pass
    context_frames: int = 100  # 2 s

    def windows(self, n_frames: int) -> list[tuple[int, int, int, int]]:
        """(window_start, window_end, keep_start, keep_end) in frames; one window if the file fits."""
        if n_frames <= self.chunk_frames + self.context_frames:
            return [(0, n_frames, 0, n_frames)]
        out = []
        for f0 in range(0, n_frames, self.chunk_frames):
            f1 = min(f0 + self.chunk_frames, n_frames)
            out.append((max(0, f0 - self.context_frames), min(n_frames, f1 + self.context_frames), f0, f1))
        return out


def _inside(folder: Path, name: str, manifest: Path) -> Path:
    """``folder/name`` for a plain file name: a manifest names files of its own folder only."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(f"{manifest}: names {name!r}, not a file of its own folder; refused")
    return folder / name


class YueCodec:
    """Audio <-> X-Codec codes, and codes -> 44.1 kHz audio through the upsamplers."""

    def __init__(
        self,
        model: XcodecModel,
        upsamplers: dict[str, VocosUpsampler] | None = None,
        *,
        device: str | torch.device | None = None,
        bf16: bool = False,
        chunk: ChunkPlan | None = None,
    ):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.upsamplers = {k: u.eval().to(self.device) for k, u in (upsamplers or {}).items()}
        # bf16 only on CUDA and only for the networks; nearest-codebook search and the ISTFT stay fp32.
        self.autocast = bf16 and self.device.type == "cuda"
        if self.autocast:
            _fp32_codebook_search(self.model.quantizer, self.device.type)
        self.chunk = chunk or ChunkPlan()

    # ---- construction -------------------------------------------------------------------------------------
    @property
    def config(self) -> XcodecConfig:
        return self.model.config

    @property
    def n_codebooks(self) -> int:
        return self.config.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device | None = None,
        bf16: bool = False,
        load_upsamplers: bool = True,
    ) -> YueCodec:
        folder = check_codec_folder(folder, "codec")
        manifest_path = folder / MANIFEST
        meta = read_json_object(manifest_path)  # JsonFileError (a ValueError) names the file
        if meta.get("format") != FOLDER_FORMAT or meta.get("version") != FOLDER_VERSION:
            raise ValueError(
                f"{manifest_path}: format {meta.get('format')!r} v{meta.get('version')} is not {FOLDER_FORMAT} v{FOLDER_VERSION}"
            )
        xcodec = _inside(folder, json_field(meta, "xcodec_file", str, manifest_path), manifest_path)
        model = build_xcodec(XcodecConfig(**json_field(meta, "xcodec_config", dict, manifest_path)), empty=True)
        load_strict(model, load_file(xcodec), str(xcodec))
        ups = {}
        if load_upsamplers:
            for track, entry in json_field(meta, "upsamplers", dict, manifest_path, {}).items():
                where = f"{manifest_path}: upsamplers[{track!r}]"
                up = build_upsampler(UpsamplerConfig.from_dict(json_field(entry, "config", dict, where)), empty=True)
                weights = _inside(folder, json_field(entry, "file", str, where), manifest_path)
                load_strict(up, load_file(weights), str(weights))
                ups[track] = up
        return cls(model, ups, device=device, bf16=bf16)

    def save(self, folder: str | Path, provenance: dict[str, Any] | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(_contiguous(self.model.state_dict()), folder / "xcodec.safetensors")
        meta: dict[str, Any] = {
            "format": FOLDER_FORMAT,
            "version": FOLDER_VERSION,
            "xcodec_file": "xcodec.safetensors",
            "xcodec_config": self.config.to_dict(),
            "sample_rate": self.config.sample_rate,
            "frame_rate": self.config.frame_rate,
            "n_codebooks": self.n_codebooks,
            "upsamplers": {},
            "provenance": provenance or {},
        }
        for track, up in self.upsamplers.items():
            name = f"upsampler_{track}.safetensors"
            save_file(_contiguous(up.state_dict()), folder / name)
            meta["upsamplers"][track] = {"file": name, "config": asdict(up.config)}
        (folder / MANIFEST).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return folder

    # ---- encode ---------------------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Frames the codec gives ``n_samples`` of 16 kHz audio: HuBERT's frames on the 160+160-padded input
        (unpadded valid convolutions); the acoustic branch is made to match them."""
        length = n_samples + 2 * self.model.pad
        sem = self.config.semantic_model_config
        for kernel, stride in zip(sem.conv_kernel, sem.conv_stride, strict=True):
            length = (length - kernel) // stride + 1
        return max(0, length)

    def bandwidth_for(self, n_codebooks: int) -> float:
        bw = n_codebooks * self.model.quantizer.get_bandwidth_per_quantizer()
        if not 1 <= n_codebooks <= self.n_codebooks or bw not in self.config.target_bandwidths:
            usable = [
                int(b / self.model.quantizer.get_bandwidth_per_quantizer()) for b in self.config.target_bandwidths
            ]
            raise ValueError(f"n_codebooks must be one of {usable}, got {n_codebooks}")
        return bw

    @torch.inference_mode()
    def _encode_batch(self, batch: torch.Tensor, bandwidth: float) -> torch.Tensor:
        """(B, L) waveforms of equal length -> (B, K, T) codes: the official algorithm, via ``XcodecModel``."""
        x = batch.to(self.device, self.dtype)[:, None, :]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.model.encode(x, bandwidth=bandwidth, return_dict=False)

    def encode_many(
        self, waves: Sequence[np.ndarray], n_codebooks: int = 1, batch_size: int = 4, advance: Advance | None = None
    ) -> list[np.ndarray]:
        """Codes ``(n_codebooks, frames)`` int16 of each 16 kHz mono wave.

        Every wave is cut into windows (see :class:`ChunkPlan`); windows of equal length, from any wave, share
        a forward pass. Unequal ones never do: HuBERT's first layer normalises over time, so padding would
        change the codes. ``advance(n)`` is called after every forward pass with the frames its windows gave
        (the calls add up to all the waves' frames), for a progress bar.
        """
        bandwidth = self.bandwidth_for(n_codebooks)
        jobs: dict[int, list[tuple[int, tuple[int, int, int, int]]]] = {}
        totals = []
        for i, wave in enumerate(waves):
            total = self.n_frames(len(wave))
            if total < 1:
                raise ValueError(f"wave {i}: {len(wave)} samples is too short for one codec frame")
            totals.append(total)
            for win in self.chunk.windows(total):
                length = len(wave) if win[1] == total else win[1] * HOP
                jobs.setdefault(length - win[0] * HOP, []).append((i, win))
        out = [np.zeros((n_codebooks, t), dtype=np.int16) for t in totals]
        for length, items in jobs.items():
            for s in range(0, len(items), batch_size):
                group = items[s : s + batch_size]
                batch = torch.stack(
                    [
                        torch.from_numpy(np.ascontiguousarray(waves[i][w[0] * HOP : w[0] * HOP + length]))
                        for i, w in group
                    ]
                )
                codes = self._encode_batch(batch, bandwidth).cpu().numpy()
                for (i, (w0, _w1, k0, k1)), c in zip(group, codes, strict=True):
                    piece = c[:, k0 - w0 : k1 - w0]
                    if piece.shape[1] != k1 - k0:  # cannot happen if n_frames() is right; never pad silently
                        raise RuntimeError(f"window {w0}..{_w1} gave {c.shape[1]} frames, expected {k1 - w0}")
                    out[i][:, k0:k1] = piece
                if advance is not None:
                    advance(sum(k1 - k0 for _i, (_w0, _w1, k0, k1) in group))
        return out

    def encode(self, wave: np.ndarray, n_codebooks: int = 1) -> np.ndarray:
        return self.encode_many([wave], n_codebooks)[0]

    # ---- decode ---------------------------------------------------------------------------------------------
    def check_codes(self, codes: np.ndarray, source: str = "codes") -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim == 1:
            codes = codes[None]
        if codes.ndim != 2 or codes.shape[1] == 0:
            raise CodesError(
                f"{source}: codes must be (n_codebooks, n_frames) with frames > 0, got shape {codes.shape}"
            )
        if not np.issubdtype(codes.dtype, np.integer):
            raise CodesError(f"{source}: codes must be integers, got {codes.dtype}")
        if codes.shape[0] > self.n_codebooks:
            raise CodesError(f"{source}: {codes.shape[0]} codebooks, the codec has {self.n_codebooks}")
        bad = (codes < 0) | (codes >= self.codebook_size)
        if bad.any():
            k, t = (int(v) for v in np.argwhere(bad)[0])
            raise CodesError(
                f"{source}: code {int(codes[k, t])} (codebook {k}, frame {t}) is outside 0..{self.codebook_size - 1}"
            )
        return codes.astype(np.int64)

    @torch.inference_mode()
    def embed(self, codes: np.ndarray) -> torch.Tensor:
        """Sum of the codebook vectors, (1, codebook_dim, T): what the upsamplers take."""
        c = torch.from_numpy(codes).to(self.device)[:, None, :]
        return self.model.quantizer.decode(c)

    @torch.inference_mode()
    def decode(
        self, codes: np.ndarray, *, source: str = "codes", chunk_frames: int = 3000, context_frames: int = 16
    ) -> np.ndarray:
        """Codes -> 16 kHz waveform of exactly ``320 * frames`` samples. The decoder is convolutional with a
        receptive field of a few frames, so decoding in overlapping chunks gives the same samples."""
        codes = self.check_codes(codes, source)
        parts = []
        for w0, w1, k0, k1 in ChunkPlan(chunk_frames, context_frames).windows(codes.shape[1]):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                y = self.model.decode(torch.from_numpy(codes[None, :, w0:w1]).to(self.device), return_dict=False)
            parts.append(_to_numpy(y[0, 0, (k0 - w0) * HOP : (k1 - w0) * HOP]))
        return np.concatenate(parts)

    @torch.inference_mode()
    def upsample(
        self,
        codes: np.ndarray,
        track: str,
        *,
        source: str = "codes",
        chunk_frames: int = 3000,
        context_frames: int = 48,
    ) -> np.ndarray:
        """Codes -> 44.1 kHz waveform of exactly ``882 * frames`` samples through the ``track`` upsampler
        (input: the summed embedding of all given codebooks, as the official ``get_embed``). The ConvNeXt
        stack sees +-27 frames, so 48 frames of context make chunked output equal to one pass."""
        if track not in self.upsamplers:
            have = ", ".join(self.upsamplers) or "none"
            raise KeyError(
                f"no '{track}' upsampler in this codec folder (have: {have}); convert with --{track}-decoder"
            )
        codes = self.check_codes(codes, source)
        up = self.upsamplers[track]
        hop = up.config.hop_length
        parts = []
        for w0, w1, k0, k1 in ChunkPlan(chunk_frames, context_frames).windows(codes.shape[1]):
            emb = self.embed(codes[:, w0:w1])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                y = up(emb.to(next(up.parameters()).dtype))
            parts.append(_to_numpy(y[0, (k0 - w0) * hop : (k1 - w0) * hop]))
        return np.concatenate(parts)


def _fp32_codebook_search(quantizer: torch.nn.Module, device_type: str) -> None:
    """Under bf16 autocast the distance matmul would run in bf16 and flip near-ties; keep it fp32."""
    encode = quantizer.encode

    def fp32_encode(embeddings: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
        with torch.autocast(device_type, enabled=False):
            return encode(embeddings.float(), bandwidth)

    quantizer.encode = fp32_encode


def build_xcodec(config: XcodecConfig, *, empty: bool = False) -> XcodecModel:
    """``XcodecModel`` for ``config``; ``empty`` builds it on the meta device (no random init of ~190M
    values) for :func:`load_strict` to fill -- every tensor it has is in the state dict."""
    with torch.device("meta" if empty else "cpu"):
        return XcodecModel(config).eval()


def build_upsampler(config: UpsamplerConfig, *, empty: bool = False) -> VocosUpsampler:
    with torch.device("meta" if empty else "cpu"):
        return VocosUpsampler(config).eval()


def load_strict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, names: dict[str, str] | None = None
) -> None:
    """``load_state_dict(strict=True)`` after a check that reports every bad key at once, naming the file.
    Tensors are assigned, not copied, so a module built on the meta device becomes real."""
    check_layout(state, module.state_dict(), source, names)
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:  # pragma: no cover - check_layout catches these first
        raise CheckpointLayoutError(f"{source}: {e}") from e


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """float32 (float64 kept, for exactness tests)."""
    return t.detach().to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32).numpy()


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}
