"""Small audio helpers shared by the metrics: choosing the stem, resampling, frame loudness."""

from __future__ import annotations

import numpy as np

from yue_train.evaluation.metrics.base import SongAudio


def vocal_or_mix(song: SongAudio) -> tuple[np.ndarray, str]:
    """The vocal stem when the song has one, else the mix; with the name of what was returned."""
    if song.vocal is not None:
        return np.asarray(song.vocal, dtype=np.float32), "vocal"
    return np.asarray(song.mix, dtype=np.float32), "mix"


def resample(wave: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 ``wave`` at ``target_rate`` (soxr's high-quality resampler)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono wave (one dimension), got shape {wave.shape}")
    if sample_rate == target_rate:
        return wave
    import soxr

    return soxr.resample(wave, sample_rate, target_rate).astype(np.float32)


def frame_signal(wave: np.ndarray, frame: int, hop: int, lead: int | None = None) -> np.ndarray:
    """(n_frames, frame) view of zero-padded ``wave``: frame i starts ``lead`` samples (default frame // 2)
    before sample i * hop, one frame per hop of the wave."""
    lead = frame // 2 if lead is None else lead
    padded = np.pad(wave, (lead, frame + hop))
    n = max(1, (len(wave) + hop - 1) // hop)
    return np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:n]
