"""What makes a folder a converted codec folder (``yue-prep convert-codec``): its manifest file. Kept apart
from :mod:`.model` so the input checks of the CLIs and the config can run it without importing torch."""

from __future__ import annotations

from pathlib import Path

MANIFEST = "yue_codec.json"


def check_codec_folder(folder: str | Path, label: str, error: type[Exception] = FileNotFoundError) -> Path:
    """``folder`` when it holds :data:`MANIFEST`; else ``error`` with one line naming it as ``label``."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise error(f"{label} {folder}: not a converted codec folder (no {MANIFEST}); run `yue-prep convert-codec`")
    return folder
