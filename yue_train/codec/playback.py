"""Codes -> playable audio for inference and the codec CLI: waveforms per stem and mix, and their files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yue_train.codec.audio_io import write_audio
from yue_train.codec.model import YueCodec
from yue_train.codec.postprocess import replace_low_band

CLIP = 0.99  # the official save_audio clamps every intermediate stem to +-0.99


def codes_to_audio(codec: YueCodec, codes: np.ndarray, track: str | None = None) -> tuple[np.ndarray, int]:
    """16 kHz X-Codec decode, or 44.1 kHz through the ``track`` ("vocal"/"inst") upsampler."""
    if track is None:
        return codec.decode(codes), codec.config.sample_rate
    return codec.upsample(codes, track), codec.upsamplers[track].config.sample_rate


def render_song(codec: YueCodec, vocal_codes: np.ndarray, inst_codes: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """Stems and mixes as YuE's inference writes them: 16 kHz stems and mix; with upsamplers also the
    44.1 kHz stems, their mix and the final mix whose band below 5.5 kHz comes from the 16 kHz mix."""
    n = min(np.shape(vocal_codes)[-1], np.shape(inst_codes)[-1])
    vocal_codes, inst_codes = np.asarray(vocal_codes)[..., :n], np.asarray(inst_codes)[..., :n]
    sr = codec.config.sample_rate
    v16 = np.clip(codec.decode(vocal_codes, source="vocal codes"), -CLIP, CLIP)
    i16 = np.clip(codec.decode(inst_codes, source="instrumental codes"), -CLIP, CLIP)
    out = {"vocal_16k": (v16, sr), "inst_16k": (i16, sr), "mix_16k": (v16 + i16, sr)}
    if {"vocal", "inst"} <= set(codec.upsamplers):
        up_sr = codec.upsamplers["vocal"].config.sample_rate
        v44 = codec.upsample(vocal_codes, "vocal", source="vocal codes")
        i44 = codec.upsample(inst_codes, "inst", source="instrumental codes")
        mix44 = np.clip(v44 + i44, -CLIP, CLIP)
        out.update({"vocal_44k": (v44, up_sr), "inst_44k": (i44, up_sr), "mix_44k": (mix44, up_sr)})
        out["final"] = (replace_low_band(out["mix_16k"][0], mix44, up_sr), up_sr)
    return out


def save_song(
    rendered: dict[str, tuple[np.ndarray, int]], out_dir: str | Path, stem: str, ext: str = ".wav"
) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {k: write_audio(out_dir / f"{stem}.{k}{ext}", w, sr) for k, (w, sr) in rendered.items()}
