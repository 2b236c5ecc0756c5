"""Builders of manifests with good and bad records, for tokenize tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def good_record(root: Path, rid: str, seconds: int = 30, seed: int = 0, n_codebooks: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    n = seconds * 50
    paths = {}
    for field in ("codec", "vocals_codec", "instrumental_codec"):
        rel = f"npy/{rid}.{field}.npy"
        (root / "npy").mkdir(parents=True, exist_ok=True)
        np.save(root / rel, rng.integers(0, 1024, size=(n_codebooks, n)))
        paths[field] = rel
    half = n // 2
    return {
        "id": rid,
        **paths,
        "audio_length_in_sec": float(seconds),
        "msa": [
            {"start": 0.0, "end": seconds / 2, "label": "verse"},
            {"start": seconds / 2, "end": seconds, "label": "chorus"},
        ],
        "genres": "pop, female, bright",
        "splitted_lyrics": {
            "segmented_lyrics": [
                {
                    "offset": 0.0,
                    "duration": half / 50,
                    "codec_frame_start": 0,
                    "codec_frame_end": half,
                    "line_content": "[verse]\nla la\n\n",
                },
                {
                    "offset": half / 50,
                    "duration": (n - half) / 50,
                    "codec_frame_start": half,
                    "codec_frame_end": n,
                    "line_content": "[chorus]\nna na\n\n",
                },
            ]
        },
    }


def write_manifest(path: Path, records: list[dict | bytes]) -> Path:
    with path.open("wb") as f:
        for r in records:
            f.write(r if isinstance(r, bytes) else json.dumps(r).encode())
            f.write(b"\n")
    return path


def bad_records(root: Path) -> dict[str, tuple[dict | bytes, str]]:
    """id -> (record, a phrase the rejection reason must contain)."""
    out: dict[str, tuple[dict | bytes, str]] = {}

    r = good_record(root, "missing-field")
    del r["genres"]
    out["missing-field"] = (r, "missing field 'genres'")

    r = good_record(root, "unreadable")
    (root / r["vocals_codec"]).write_bytes(b"not a numpy file")
    out["unreadable"] = (r, "is not a .npy file")

    r = good_record(root, "truncated")
    data = (root / r["codec"]).read_bytes()
    (root / r["vocals_codec"]).write_bytes(data[: len(data) // 2])
    out["truncated"] = (r, "its header claims")

    r = good_record(root, "no-file")
    r["instrumental_codec"] = "npy/absent.npy"
    out["no-file"] = (r, "file not found")

    r = good_record(root, "shape")
    np.save(root / r["vocals_codec"], np.zeros(1500, dtype=np.int64))
    out["shape"] = (r, "has shape (1500,)")

    r = good_record(root, "range")
    arr = np.load(root / r["vocals_codec"])
    arr[0, 17] = 1024
    np.save(root / r["vocals_codec"], arr)
    out["range"] = (r, "code 1024 at index (0, 17)")

    r = good_record(root, "beyond")
    r["splitted_lyrics"]["segmented_lyrics"][1]["codec_frame_end"] = 2000
    out["beyond"] = (r, "lie beyond the 1500-frame codes")

    r = good_record(root, "fps")
    r["audio_length_in_sec"] = 35.0
    out["fps"] = (r, "42.86 frames/s, outside [49, 51]")

    r = good_record(root, "mismatch")
    np.save(root / r["instrumental_codec"], np.load(root / r["instrumental_codec"])[:, :1488])
    out["mismatch"] = (r, "differ by 12 frames")

    r = good_record(root, "empty-lyrics")
    for s in r["splitted_lyrics"]["segmented_lyrics"]:
        s["line_content"] = "  \n"
    out["empty-lyrics"] = (r, "lyrics are empty")

    out["line 12"] = (b'{"id": "latin1", "genres": "caf\xe9"}', "not UTF-8")
    out["line 13"] = (b"{not json", "not valid JSON")
    return out
