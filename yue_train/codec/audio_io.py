"""Reading any audio file as mono float32 at a target rate, and writing results.

soundfile (libsndfile >= 1.1 reads mp3) decodes in blocks, channels are averaged (as the official
``load_audio_mono`` does) and soxr resamples block by block, so an hour of 44.1 kHz stereo never sits in
memory at its source rate. ffmpeg, when installed, is the fallback for containers libsndfile cannot read
(m4a, webm, ...).

``max_seconds`` bounds what a caller holds: the length the header states is checked before decoding, and
decoding stops one block past the limit whatever the header says (ffmpeg decodes at most a second past it),
so a two-hour file costs a block, not the whole decoded wave.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

BLOCK_FRAMES = 1 << 18
# The longest audio a song's readers take (evaluation, build, alignment, separation, reference prompts): 20
# minutes at 16 kHz is 77 MB per wave, and a step holds a few waves' worth (resampled, as float64, stems).
MAX_SONG_SECONDS = 20 * 60
SILENCE_PEAK = 1e-5  # -100 dBFS: below this the file holds no usable signal


class AudioError(ValueError):
    """Audio that cannot be used; the message starts with the file name."""


def too_long(path: Path, seconds: float, max_seconds: float) -> AudioError:
    return AudioError(
        f"{path}: {seconds:,.0f} s of audio, longer than the {max_seconds:,.0f} s read here; cut it into parts"
    )


def _read_soundfile(path: Path, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    with sf.SoundFile(str(path)) as f:
        src_rate = f.samplerate
        if max_seconds is not None and f.frames > max_seconds * src_rate:
            raise too_long(path, f.frames / src_rate, max_seconds)
        resampler = None if src_rate == sample_rate else soxr.ResampleStream(src_rate, sample_rate, 1, dtype="float32")
        parts: list[np.ndarray] = []
        held = 0
        while True:
            if max_seconds is not None and held > max_seconds * sample_rate:
                raise too_long(path, held / sample_rate, max_seconds)
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < BLOCK_FRAMES
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            parts.append(mono)
            held += len(mono)
            if last:
                break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _read_ffmpeg(path: Path, sample_rate: int, why: str, max_seconds: float | None) -> np.ndarray:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(f"{path}: cannot decode audio ({why}); ffmpeg is not installed for a fallback")
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", str(sample_rate)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds + 1:.3f}"]
    cmd.append("-")
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(f"{path}: cannot decode audio ({why}; ffmpeg: {msg[-1] if msg else proc.returncode})")
    wave = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if max_seconds is not None and len(wave) > max_seconds * sample_rate:
        raise too_long(path, len(wave) / sample_rate, max_seconds)
    return wave


def load_audio(
    path: str | Path, sample_rate: int = 16_000, *, allow_silent: bool = False, max_seconds: float | None = None
) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate``.

    Raises :class:`AudioError` (message starting with the path) for a missing, unreadable, empty, non-finite,
    (unless ``allow_silent``) silent or (with ``max_seconds``) longer file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        wave = _read_soundfile(path, sample_rate, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        wave = _read_ffmpeg(path, sample_rate, str(e).strip() or type(e).__name__, max_seconds)
    return check_wave(wave, str(path), allow_silent=allow_silent)


def check_wave(wave: np.ndarray, name: str, *, allow_silent: bool = False) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"{name}: expected mono samples, got shape {wave.shape}")
    if wave.size == 0:
        raise AudioError(f"{name}: contains no audio samples (zero length)")
    if not np.isfinite(wave).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    peak = float(np.abs(wave).max())
    if peak < SILENCE_PEAK and not allow_silent:
        raise AudioError(f"{name}: is silent (peak {peak:.2g} < {SILENCE_PEAK:g}); nothing to encode")
    return wave


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int, *, rescale: bool = False) -> Path:
    """Write mono or (channels, samples) audio; like the official ``save_audio``, peaks are clamped to
    +-0.99 unless ``rescale`` scales the whole signal down instead. WAV/FLAC are 16-bit PCM."""
    path = Path(path)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.T  # soundfile wants (samples, channels)
    limit = 0.99
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    wave = wave * min(limit / peak, 1.0) if rescale and peak > 0 else np.clip(wave, -limit, limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_16" if path.suffix.lower() in (".wav", ".flac") else None
    sf.write(str(path), wave, sample_rate, subtype=subtype)
    return path
