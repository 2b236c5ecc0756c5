"""yue-train: training, fine-tuning, data preparation and inference for YuE.

The data path, by module:
  manifest records (yue_train.data.manifest) -> documents (yue_train.format.sequences)
  -> webdataset shards (yue_train.data.shards) -> packed batches -> model -> loss.

The Python API (:mod:`yue_train.api`): ``YuE.from_pretrained(...).generate(...)``, ``train(recipe, ...)``,
``build_shards(songs, out)``, ``evaluate(songs_dir)``. They are loaded on first use, so ``import yue_train``
stays cheap and nothing in the library imports the API.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("YuE", "Reference", "GeneratedSong", "train", "recipe_config", "build_shards", "evaluate")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("yue_train.api"), name)
    raise AttributeError(f"module 'yue_train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
