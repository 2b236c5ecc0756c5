"""A small synthetic corpus in the official manifest format: random codes, generated lyrics and tags.

It lets the demo and the tests run on a fresh machine with no audio and no downloads. Codes are random
but structured like music codes (a slowly changing set of recurring codes per section), so every
format rule that looks at code statistics (distinct-code filters) behaves as on real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from yue_train.format import codec_layout as cl

_TAGS = ["pop", "rock", "jazz", "electronic", "male", "female", "energetic", "sad", "piano", "guitar", "bright"]
_WORDS = "love night light heart fire rain sun moon sky road home dream baby world city star time life".split()
_SECTION_PLAN = [("intro", 6.0), ("verse", 12.0), ("chorus", 10.0), ("verse", 10.0), ("chorus", 10.0), ("outro", 6.0)]


def _section_codes(rng: np.random.Generator, n_codebooks: int, n_frames: int) -> np.ndarray:
    palette = rng.integers(0, cl.CODEBOOK_SIZE, size=(n_codebooks, 64))
    picks = rng.integers(0, 64, size=(n_codebooks, n_frames))
    return np.take_along_axis(palette, picks, axis=1)


def _lyric_lines(rng: np.random.Generator, label: str) -> str:
    if label in ("intro", "outro"):
        return f"[{label}]\n\n"
    lines = [" ".join(rng.choice(_WORDS, size=4)) for _ in range(2)]
    return f"[{label}]\n" + "\n".join(lines) + "\n\n"


def make_song(rng: np.random.Generator, song_id: str, n_codebooks: int = cl.STAGE2_CODEBOOKS) -> tuple[dict, dict]:
    """One record (manifest dict with relative npy paths) and its arrays {field: codes}."""
    frames = [round(sec * cl.FRAMES_PER_SECOND) for _, sec in _SECTION_PLAN]
    total = sum(frames)
    tracks = {
        name: np.concatenate([_section_codes(rng, n_codebooks, n) for n in frames], axis=1).astype(np.int16)
        for name in ("codec", "vocals_codec", "instrumental_codec")
    }
    segments, msa, start = [], [], 0
    for (label, _), n in zip(_SECTION_PLAN, frames, strict=True):
        segments.append(
            {
                "offset": start / cl.FRAMES_PER_SECOND,
                "duration": n / cl.FRAMES_PER_SECOND,
                "codec_frame_start": start,
                "codec_frame_end": start + n,
                "line_content": _lyric_lines(rng, label),
            }
        )
        msa.append({"start": start / cl.FRAMES_PER_SECOND, "end": (start + n) / cl.FRAMES_PER_SECOND, "label": label})
        start += n
    record = {
        "id": song_id,
        "codec": f"npy/{song_id}.npy",
        "vocals_codec": f"npy/{song_id}.Vocals.npy",
        "instrumental_codec": f"npy/{song_id}.Instrumental.npy",
        "audio_length_in_sec": total / cl.FRAMES_PER_SECOND,
        "msa": msa,
        "genres": ", ".join(rng.choice(_TAGS, size=4, replace=False)),
        "splitted_lyrics": {"segmented_lyrics": segments},
    }
    return record, tracks


def write_synthetic_manifest(out_dir: str | Path, n_songs: int = 8, seed: int = 0) -> Path:
    """Write ``out_dir/manifest.jsonl`` and ``out_dir/npy/*.npy``; paths in the manifest are relative to out_dir."""
    out = Path(out_dir)
    (out / "npy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(n_songs):
        record, tracks = make_song(rng, f"synth{n:04d}")
        for field, codes in tracks.items():
            np.save(out / record[field], codes)
        lines.append(json.dumps(record))
    manifest = out / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
