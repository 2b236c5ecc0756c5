"""An evaluation into a W&B run: the aggregate values as scalars, a table with one row per song (its mix
and vocal as ``wandb.Audio``, spectrogram and pitch contour as ``wandb.Image``, values, lyrics), the same
media as lists under ``PREFIX/mix``, ``PREFIX/vocal``, ``PREFIX/spectrogram``, ``PREFIX/pitch`` (W&B keeps a
table's media only when it uploads the table, so an offline run holds the files through these), and the
HTML report as ``wandb.Html``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from yue_train.evaluation.scoring import Evaluation

PREFIX = "eval_songs"


def log_evaluation(
    run: Any,
    evaluation: Evaluation,
    pictures: list[dict[str, bytes]],
    report: Path | None = None,
    step: int | None = None,
    prefix: str = PREFIX,
    scalars: bool = True,
) -> dict[str, Any]:
    """Log to ``run`` (a ``wandb`` run); returns what was logged, keyed as in W&B. ``scalars=False`` leaves
    the aggregate values out (a caller that logs them itself)."""
    import wandb
    from PIL import Image

    keys = list(dict.fromkeys(k for sc in evaluation.scores for k in sc.values))
    columns = ["id", "genres", "mix", "vocal", "spectrogram", "pitch", *keys, "lyrics"]
    table = wandb.Table(columns=columns)
    lists: dict[str, list[Any]] = {"mix": [], "vocal": [], "spectrogram": [], "pitch": []}
    for song, sc, found in zip(evaluation.songs, evaluation.scores, pictures, strict=True):
        a = song.audio
        mix = wandb.Audio(a.mix, sample_rate=a.sample_rate, caption=f"{a.id} mix") if song.has_audio else None
        vocal = None
        if a.vocal is not None and len(a.vocal):
            vocal = wandb.Audio(a.vocal, sample_rate=a.sample_rate, caption=f"{a.id} vocal")
        images = {k: wandb.Image(Image.open(io.BytesIO(png)), caption=f"{a.id} {k}") for k, png in found.items()}
        for name, item in (("mix", mix), ("vocal", vocal), *images.items()):
            if item is not None:
                lists[name].append(item)
        table.add_data(
            a.id,
            a.genres,
            mix,
            vocal,
            images.get("spectrogram"),
            images.get("pitch"),
            *(sc.values.get(k) for k in keys),
            a.lyrics,
        )
    data: dict[str, Any] = {f"{prefix}/{k}": v for k, v in evaluation.aggregate.items()} if scalars else {}
    data[f"{prefix}/songs_table"] = table
    data.update({f"{prefix}/{name}": items for name, items in lists.items() if items})
    if report is not None:
        data[f"{prefix}/report"] = wandb.Html(Path(report).read_text(encoding="utf-8"), inject=False)
    run.log(data, step=step)
    return data
