"""Encoding many audio files to ``.npy`` codes, continuing past bad files and reporting them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from yue_train.codec.audio_io import AudioError, load_audio
from yue_train.codec.model import YueCodec
from yue_train.progress import audio_bar

log = logging.getLogger(__name__)


@dataclass
class EncodeResult:
    audio: str
    out: str
    status: str  # "ok" | "error" | "skipped"
    frames: int = 0
    seconds: float = 0.0
    error: str = ""


@dataclass
class EncodeJob:
    audio: Path
    out: Path


def jobs_from_paths(paths: Sequence[str | Path], out_dir: str | Path) -> list[EncodeJob]:
    """``<out_dir>/<stem>.npy`` for each file; two inputs with one stem would overwrite each other, so
    later ones get the parent folder's name prefixed."""
    out_dir = Path(out_dir)
    seen: set[str] = set()
    jobs = []
    for p in map(Path, paths):
        name = p.stem
        if name in seen:
            name = f"{p.parent.name}__{p.stem}"
        seen.add(name)
        jobs.append(EncodeJob(p, out_dir / f"{name}.npy"))
    return jobs


def jobs_from_manifest(manifest: str | Path, out_dir: str | Path) -> list[EncodeJob]:
    """Manifest lines: JSON objects ``{"audio": PATH, "out": NAME}`` (``out`` optional; ``id`` also accepted
    as the name) or plain paths. Relative audio paths are relative to the manifest's folder."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    paths, names = [], []
    for line_no, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                rec = json.loads(line)
                audio = rec["audio"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{manifest}:{line_no}: expected a JSON object with an 'audio' field ({e})") from e
            name = rec.get("out") or rec.get("id")
        else:
            audio, name = line, None
        path = Path(audio)
        paths.append(path if path.is_absolute() else manifest.parent / path)
        names.append(str(name) if name is not None else None)
    jobs = jobs_from_paths(paths, out_dir)
    for job, name in zip(jobs, names, strict=True):
        if name:
            job.out = Path(out_dir) / (name if name.endswith(".npy") else f"{name}.npy")
    return jobs


def encode_files(
    codec: YueCodec,
    jobs: Iterable[EncodeJob],
    *,
    n_codebooks: int = 1,
    batch_size: int = 4,
    files_per_group: int = 8,
    allow_silent: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> list[EncodeResult]:
    """Encode each job's audio to ``(n_codebooks, frames)`` int16 codes. A file that cannot be read or
    encoded is reported (``status="error"``) and the rest go on. ``progress``: a bar on stderr over the
    seconds of audio read so far (its total grows as files are read), moving per encoded window."""
    results: list[EncodeResult] = []
    pending: list[tuple[EncodeJob, np.ndarray]] = []
    bar = audio_bar(0, "encode", progress)

    def flush() -> None:
        if not pending:
            return
        waves = [w for _, w in pending]
        done = bar.n
        try:
            all_codes = codec.encode_many(waves, n_codebooks, batch_size, advance=bar.update)
        except Exception:  # isolate the culprit: one file at a time
            bar.n, all_codes = done, []
            for job, wave in pending:
                try:
                    all_codes.append(codec.encode_many([wave], n_codebooks, advance=bar.update)[0])
                except Exception as e:  # noqa: BLE001 - reported, not swallowed
                    bar.total -= codec.n_frames(len(wave))
                    all_codes.append(f"{job.audio}: encoding failed ({type(e).__name__}: {e})")
        for (job, wave), codes in zip(pending, all_codes, strict=True):
            if isinstance(codes, str):
                results.append(EncodeResult(str(job.audio), str(job.out), "error", error=codes))
                log.error(codes)
                continue
            job.out.parent.mkdir(parents=True, exist_ok=True)
            np.save(job.out, codes)
            results.append(EncodeResult(str(job.audio), str(job.out), "ok", codes.shape[1], len(wave) / 16_000))
        pending.clear()

    for job in jobs:
        if job.out.exists() and not overwrite:
            results.append(EncodeResult(str(job.audio), str(job.out), "skipped", error="output exists"))
            continue
        try:
            wave = load_audio(job.audio, codec.config.sample_rate, allow_silent=allow_silent)
            if codec.n_frames(len(wave)) < 1:
                raise AudioError(f"{job.audio}: {len(wave)} samples is shorter than one codec frame")
        except AudioError as e:
            results.append(EncodeResult(str(job.audio), str(job.out), "error", error=str(e)))
            log.error("%s", e)
            continue
        pending.append((job, wave))
        bar.total += codec.n_frames(len(wave))
        bar.refresh()
        if len(pending) >= files_per_group:
            flush()
    flush()
    bar.close()
    return results


def write_report(results: Sequence[EncodeResult], path: str | Path, wall_seconds: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "ok": sum(r.status == "ok" for r in results),
        "error": sum(r.status == "error" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "audio_seconds": round(sum(r.seconds for r in results), 3),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "wall_seconds": round(wall_seconds, 3),
    }
    path.write_text(json.dumps({"summary": summary, "files": [asdict(r) for r in results]}, indent=2) + "\n")
    return path
