"""A converted codec folder (``yue-prep convert-codec``) as data preparation keys codes by it, without loading
torch: a build that finds every song's codes on disk never loads the codec."""

from __future__ import annotations

import hashlib
from pathlib import Path

from yue_train.format.bounded_json import read_json_object
from yue_train.format.provenance import hash_file

MANIFEST = "yue_codec.json"


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
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"--codec {folder}: not a converted codec folder (no {MANIFEST})")
    h = hashlib.sha256(manifest.read_bytes())
    meta = read_json_object(manifest)
    return hash_file(folder / meta.get("xcodec_file", "xcodec.safetensors"), h).hexdigest()
