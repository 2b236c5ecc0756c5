"""Loading transformers weights for a metric from a local folder or a hub id, with one-line errors.

A hub id is looked up in the local Hugging Face cache only, unless the metric's ``download`` option is
true: an evaluation never reaches the network unless asked to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from yue_train.errors import first_line
from yue_train.evaluation.metrics.base import MetricError

T = TypeVar("T")


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or Path(source).exists()


def load_weights(
    what: str,
    source: str | None,
    example: str,
    load: Callable[[str, bool], T],
    download: bool = False,
    option: str = "the metric's option model",
) -> T:
    """``load(source, local_files_only)`` or a MetricError naming the missing weights and how to get them.

    ``what`` names the weights in messages ("CLAP weights"), ``example`` is a hub id that works, ``option``
    is where the user gives the weights (a metric option, or a command-line flag)."""
    from yue_train.models.hub import PretrainedRefused  # imports transformers: only when weights load

    if not source:
        raise MetricError(
            f"{what}: set {option} to a local folder or hub id, e.g. {example} "
            f"(get it with `huggingface-cli download {example} --local-dir DIR` and give DIR)"
        )
    if _looks_like_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise MetricError(
                f"{what} not found at {folder}; get them with `huggingface-cli download {example} --local-dir {folder}`"
            )
        try:
            return load(str(folder), True)
        except PretrainedRefused as exc:
            raise MetricError(f"{what} at {folder} cannot be loaded: {exc}") from None
        except (OSError, ValueError) as exc:
            raise MetricError(
                f"{what} at {folder} cannot be loaded ({first_line(exc)}); download them again with "
                f"`huggingface-cli download {example} --local-dir {folder}`"
            ) from exc
    try:
        return load(source, not download)
    except PretrainedRefused as exc:
        raise MetricError(f"{what}: {exc}") from None
    except (OSError, ValueError) as exc:
        hint = "" if download else ", or set the metric's option download: true"
        raise MetricError(
            f"{what} {source} are not in the local Hugging Face cache; get them with "
            f"`huggingface-cli download {source}` (or --local-dir DIR and give DIR as {option}){hint}"
        ) from exc
