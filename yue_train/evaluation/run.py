"""One evaluation, start to end: songs -> metrics -> ``eval.json`` + ``report.html`` (+ a W&B run).

``yue-eval`` and the evaluation inside training both end here."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yue_train.evaluation.report import MEDIA, REPORT_HTML, place_media, song_pictures, write_report
from yue_train.evaluation.scoring import EVAL_JSON, Evaluation, parse_metrics, score_songs, write_eval_json
from yue_train.evaluation.songs import LoadedSong, load_songs

VOICE_METRIC = "voice_similarity"
OUTPUTS = (MEDIA, EVAL_JSON, REPORT_HTML)


@contextlib.contextmanager
def removed_on_failure(out: Path) -> Iterator[None]:
    """Remove the outputs (and ``out`` itself) that the block created when it fails (a full disk, Ctrl-C):
    an evaluation leaves a whole report or none of a new one."""
    made_out = not out.exists()
    new = [out / name for name in OUTPUTS if not (out / name).exists()]
    try:
        yield
    except BaseException:
        for path in new:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if made_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def with_target_voices(names: list[str], options: dict[str, dict[str, Any]], songs: list[LoadedSong]):
    """``options`` with voice_similarity's ``target`` set to the prompts' reference audio (the target voice
    of a prompt set's ``reference``), unless the options name a target themselves."""
    voices = sorted({str(s.audio.info["target_voice"]) for s in songs if s.audio.info.get("target_voice")})
    own = dict(options.get(VOICE_METRIC) or {})
    if VOICE_METRIC not in names or not voices or "target" in own:
        return options
    return {**options, VOICE_METRIC: {**own, "target": voices}}


@dataclass
class EvalOutputs:
    evaluation: Evaluation
    eval_json: Path
    report: Path
    pictures: list[dict[str, bytes]]  # per song, as report.song_pictures draws them


def evaluate(
    songs: list[LoadedSong],
    out: str | Path,
    metrics: str | list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    reference: list[LoadedSong] | None = None,
    *,
    title: str = "yue-eval",
    progress: bool = True,
    wandb_run: Any = None,
    step: int | None = None,
    config: dict[str, Any] | None = None,
) -> EvalOutputs:
    """Score ``songs`` (metrics by name: a list, ``"a,b"`` or None for the defaults) and write ``out/eval.json``
    and ``out/report.html``; log them to ``wandb_run`` when given."""
    names = parse_metrics(metrics)
    options = with_target_voices(names, options or {}, songs)
    config = {"metrics": names, "options": options, **(config or {})}
    evaluation = score_songs(songs, names, options, reference, progress=progress, config=config)
    with removed_on_failure(Path(out)):
        place_media(songs, Path(out))  # eval.json and the report link the same files, inside ``out``
        eval_json = write_eval_json(evaluation, out)
        pictures = song_pictures(evaluation)
        report = write_report(evaluation, out, title, pictures)
    if wandb_run is not None:
        from yue_train.evaluation.wandb_log import log_evaluation

        log_evaluation(wandb_run, evaluation, pictures, report, step=step)
    return EvalOutputs(evaluation, eval_json, report, pictures)


def evaluate_folder(
    songs_dir: str | Path,
    out: str | Path | None = None,
    metrics: str | list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    reference_dir: str | Path | None = None,
    follow_symlinks: bool = False,
    **kwargs: Any,
) -> EvalOutputs:
    """:func:`evaluate` on a folder of songs (a ``yue-infer generate`` output or audio files), optionally
    against a reference folder of audio; ``out`` defaults to ``songs_dir``. Files outside those folders
    are read only with ``follow_symlinks`` (see :mod:`yue_train.evaluation.songs`)."""
    songs = load_songs(songs_dir, follow_symlinks)
    reference = load_songs(reference_dir, follow_symlinks) if reference_dir is not None else None
    config = {"songs": str(songs_dir), "reference": None if reference_dir is None else str(reference_dir)}
    config.update(kwargs.pop("config", None) or {})
    return evaluate(songs, out or songs_dir, metrics, options, reference, config=config, **kwargs)
