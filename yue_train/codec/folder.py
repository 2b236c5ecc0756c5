"""A converted codec folder (``yue-prep convert-codec``): what makes a folder one (its manifest), and the
fingerprint data preparation keys codes by. Kept apart from :mod:`.model` so that the CLIs' input checks,
the config and a build that finds every song's codes on disk run without importing torch."""

from __future__ import annotations

import hashlib
from pathlib import Path

from yue_train.format.bounded_json import read_json_object
from yue_train.format.provenance import file_fingerprint

MANIFEST = "yue_codec.json"


def check_codec_folder(folder: str | Path, label: str, error: type[Exception] = FileNotFoundError) -> Path:
    """``folder`` when it holds :data:`MANIFEST`; else ``error`` with one line naming it as ``label``."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise error(f"{label} {folder}: not a converted codec folder (no {MANIFEST}); run `yue-prep convert-codec`")
    return folder


def check_official_folder(folder: Path) -> None:
    """Refuse an official xcodec_mini_infer download (``final_ckpt/*.pth``, ``decoders/*.pth``) with the
    ``convert-codec`` command that turns it into the converted folder ``--codec`` takes."""
    if not folder.is_dir() or (folder / MANIFEST).is_file():
        return
    ckpts = sorted((folder / "final_ckpt").glob("*.pth")) or sorted(folder.glob("*.pth"))
    if not ckpts:
        return
    decoders = {p.name: p for p in (folder / "decoders").glob("*.pth")}
    cmd = f"yue-prep convert-codec --xcodec-ckpt {ckpts[-1]}"
    for flag, name in (("--vocal-decoder", "decoder_131000.pth"), ("--inst-decoder", "decoder_151000.pth")):
        if name in decoders:
            cmd += f" {flag} {decoders[name]}"
    raise FileNotFoundError(
        f"--codec {folder} is an official xcodec_mini_infer folder; convert it once with `{cmd} --out codec/` "
        "and pass --codec codec/"
    )


def codec_fingerprint(folder: Path) -> str:
    """Hash of the codec's manifest and weights (other weights make other codes); FileNotFoundError for a
    folder that is not a converted codec."""
    check_official_folder(folder)
    manifest = check_codec_folder(folder, "--codec") / MANIFEST
    h = hashlib.sha256(manifest.read_bytes())
    meta = read_json_object(manifest)
    return file_fingerprint(folder / meta.get("xcodec_file", "xcodec.safetensors"), h)
