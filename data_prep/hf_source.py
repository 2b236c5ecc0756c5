"""Songs from a Hugging Face dataset for ``yue-prep build --hf-dataset``: a hub id, a folder saved with
``save_to_disk``, or a folder of data files ``datasets.load_dataset`` reads.

Each row becomes the song spec a song folder gives (:class:`data_prep.songs.SongSpec`): its audio is
written as files into a scratch folder (an ``Audio`` column's stored bytes as they are, undecoded; a
``{"array", "sampling_rate"}`` value as 16-bit WAV; a string as a path) and its lyrics and tags go
through the same parsers as ``song.json``. Columns are found by the names ``COLUMN_KEYS`` (``mix`` also
as ``audio``) unless ``--hf-columns`` maps them, e.g. ``mix=audio,vocals=vocal_stem,lyrics=lrc``.

Lyrics cells: LRC text, CSV text (``start,end,label,lyrics``), or sections / official segments as JSON
text or as a list of ``{start, end, label, lyrics}`` records. Tags: a comma-separated string or a list.
A row that cannot be described is kept as a rejected song with the reason, as a bad song folder is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.songs import AUDIO_TYPES, STEMS, SongError, SongSpec, resolve_spec

COLUMN_KEYS = ("id", "mix", "vocals", "instrumental", "lyrics", "tags")
REQUIRED = ("mix", "lyrics", "tags")
AUDIO_KEYS = ("mix", *STEMS)
_FALLBACK = {"mix": ("audio",)}


class HFSourceError(ValueError):
    """A dataset or column mapping the build cannot read; one line saying what to change."""


def parse_columns(text: str | None) -> dict[str, str]:
    """``"mix=audio,lyrics=lrc"`` -> ``{"mix": "audio", "lyrics": "lrc"}`` (keys from ``COLUMN_KEYS``)."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, column = (x.strip() for x in part.partition("="))
        if not sep or not column:
            raise HFSourceError(f"--hf-columns: {part.strip()!r} is not KEY=COLUMN (e.g. mix=audio)")
        if key not in COLUMN_KEYS:
            raise HFSourceError(f"--hf-columns: unknown key {key!r}; keys are {', '.join(COLUMN_KEYS)}")
        mapping[key] = column
    return mapping


def load_hf_dataset(source: str, split: str = "train") -> Any:
    """The ``split`` of a saved dataset folder (``load_from_disk``) or of anything ``load_dataset`` opens."""
    import datasets

    path = Path(source)
    saved = path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json"))
    try:
        if saved:
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise HFSourceError(f"--hf-dataset {source}: no split {split!r}; it has {', '.join(ds)}")
                ds = ds[split]
            return ds
        return datasets.load_dataset(source, split=split)
    except HFSourceError:
        raise
    except Exception as e:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ValueError)
        message = " ".join(str(e).split()) or type(e).__name__
        raise HFSourceError(f"--hf-dataset {source}: cannot load split {split!r} ({message})") from None


def resolve_columns(columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Key -> column for every key the dataset has; missing required ones are an error."""
    resolved: dict[str, str] = {}
    for key in COLUMN_KEYS:
        if key in mapping:
            if mapping[key] not in columns:
                raise HFSourceError(
                    f"--hf-columns {key}={mapping[key]}: no such column; the dataset has {', '.join(columns)}"
                )
            resolved[key] = mapping[key]
            continue
        for name in (key, *_FALLBACK.get(key, ())):
            if name in columns:
                resolved[key] = name
                break
    missing = [k for k in REQUIRED if k not in resolved]
    if missing:
        raise HFSourceError(
            f"the dataset has no {' / '.join(missing)} column; name it with --hf-columns "
            f"{missing[0]}=COLUMN (columns: {', '.join(columns)})"
        )
    return resolved


def _write_audio(value: Any, folder: Path, name: str, write: bool, base: Path) -> str | None:
    """A cell's audio as a file in ``folder`` (or the path it names, relative to ``base``); None for an
    empty cell. Without ``write`` only the file's name is returned (another rank writes and encodes it)."""
    if value is None:
        return None
    if isinstance(value, str):
        return str(base / value)
    if not isinstance(value, dict):
        raise SongError(f"{name}: an audio cell must be an Audio value, a path or {{array, sampling_rate}}")
    if value.get("bytes"):
        suffix = Path(value.get("path") or "").suffix.lower()
        target = folder / f"{name}{suffix if suffix in AUDIO_TYPES else '.wav'}"
        if write:
            target.write_bytes(value["bytes"])
        return str(target)
    if value.get("array") is not None:
        rate = value.get("sampling_rate")
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise SongError(f"{name}: an audio array needs a positive integer sampling_rate")
        target = folder / f"{name}.wav"
        if write:
            from yue_train.codec.audio_io import write_audio

            wave = np.asarray(value["array"], dtype=np.float32)
            write_audio(target, wave if wave.ndim == 1 else wave.T, rate)
        return str(target)
    if value.get("path"):
        return str(base / value["path"])
    return None


def _lyrics(value: Any, folder: Path, write: bool) -> dict[str, Any]:
    """The song.json keys that carry a cell's lyrics: inline sections, or a written .lrc/.csv file."""
    if isinstance(value, (list, dict)):
        return {"sections": value}
    if not isinstance(value, str) or not value.strip():
        raise SongError("lyrics: the cell is empty or not text / a list of sections")
    text = value.strip()
    if text[0] in "[{":
        try:
            return {"sections": json.loads(text)}
        except json.JSONDecodeError:
            pass  # LRC also starts with '['
    header = text.splitlines()[0].lower().replace(" ", "").split(",")
    suffix = ".csv" if {"start", "end", "label"} <= set(header) else ".lrc"
    path = folder / f"lyrics{suffix}"
    if write:
        path.write_text(value, encoding="utf-8")
    return {"lyrics": str(path)}


def row_spec(
    index: int,
    row: dict[str, Any],
    columns: dict[str, str],
    folder: Path,
    source: str,
    write: bool = True,
    base: Path = Path("."),
) -> SongSpec:
    """One row -> a SongSpec whose files live in ``folder``; a row that cannot be described gets ``error``.
    Without ``write`` the spec is complete but its files are not written."""
    sid = row.get(columns["id"]) if "id" in columns else None
    sid = f"row{index:06d}" if sid is None else sid
    where = f"{source} row {index}"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        data: dict[str, Any] = {"id": sid}
        for key in AUDIO_KEYS:
            if key in columns:
                path = _write_audio(row.get(columns[key]), folder, key, write, base)
                if path is not None:
                    data[key] = path
        data.update(_lyrics(row.get(columns["lyrics"]), folder, write))
        tags = row.get(columns["tags"])
        if tags is not None:
            data["tags"] = tags
    except SongError as e:
        return SongSpec(index, str(sid), where, error=str(e))
    return resolve_spec(index, data, folder, where, None)


def hf_song_specs(
    source: str,
    mapping: dict[str, str],
    scratch: Path,
    split: str = "train",
    materialise: Callable[[int], bool] = lambda index: True,
) -> list[SongSpec]:
    """A SongSpec per row of the dataset, in row order, its files under ``scratch``. Only rows that
    ``materialise(index)`` accepts get files written (a rank encodes only its own songs); every rank
    describes every row, so duplicate ids are found alike on all ranks."""
    ds = load_hf_dataset(source, split)
    columns = resolve_columns(list(ds.column_names), mapping)
    import datasets

    for key in AUDIO_KEYS:  # stored bytes as they are: no decoding library needed, nothing re-encoded
        if key in columns and isinstance(ds.features.get(columns[key]), datasets.Audio):
            ds = ds.cast_column(columns[key], datasets.Audio(decode=False))
    base = Path(source).resolve() if Path(source).is_dir() else Path.cwd()  # for audio cells that are paths
    scratch = scratch.resolve()
    return [
        row_spec(index, ds[index], columns, scratch / f"{index:08d}", source, materialise(index), base)
        for index in range(len(ds))
    ]
