"""What ``yue-infer generate`` writes: ``report.json`` and one ``songNN/`` folder of codes per song; reading
a song folder back to continue it; and the rule that an earlier output is replaced only on request."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yue_train.format import codec_layout as cl

REPORT = "report.json"
STAGE1_FILES = ("stage1_ids.npy", "stage1_vocal.npy", "stage1_inst.npy")
STAGE2_FILES = ("stage2_vocal.npy", "stage2_inst.npy")
_SONG_DIR = re.compile(r"song\d{2,}")


class SongFolderError(ValueError):
    """A song folder or output folder that cannot be used as asked; the message says what to do."""


@dataclass
class SongCodes:
    """The codes of one song: the stage-1 sequence, its codebook-0 tracks and (once stage 2 ran) 8 codebooks."""

    ids: np.ndarray  # the whole stage-1 sequence: prompts and generated sections
    vocal: np.ndarray  # (1, T) codebook-0 codes
    inst: np.ndarray
    vocal8: np.ndarray | None = None  # (8, T) codebooks 0..7, None before stage 2
    inst8: np.ndarray | None = None

    @property
    def stage2_frames(self) -> int:
        return 0 if self.vocal8 is None else int(self.vocal8.shape[1])


def song_dir(out: Path, k: int) -> Path:
    return out / f"song{k:02d}"


def read_song(folder: Path) -> SongCodes:
    """A song folder of an earlier run, checked: its stage-2 codes (if any) extend its stage-1 codes."""
    missing = [f for f in STAGE1_FILES if not (folder / f).is_file()]
    if missing:
        raise SongFolderError(f"missing {', '.join(missing)} (give a song folder of yue-infer generate)")
    ids, vocal, inst = (np.load(folder / f) for f in STAGE1_FILES)
    if vocal.ndim != 2 or vocal.shape != inst.shape:
        raise SongFolderError(f"stage1_vocal.npy {vocal.shape} and stage1_inst.npy {inst.shape} differ")
    song = SongCodes(ids, vocal, inst)
    present = [(folder / f).is_file() for f in STAGE2_FILES]
    if any(present) and not all(present):
        raise SongFolderError(f"has only one of {', '.join(STAGE2_FILES)}; remove it to redo stage 2")
    if all(present):
        song.vocal8, song.inst8 = (np.load(folder / f) for f in STAGE2_FILES)
        for name, codes8, codes1 in (("vocal", song.vocal8, vocal), ("inst", song.inst8, inst)):
            if codes8.shape != (cl.STAGE2_CODEBOOKS, codes1.shape[1]) or not np.array_equal(codes8[0], codes1[0]):
                raise SongFolderError(f"stage2_{name}.npy does not extend stage1_{name}.npy; remove it to redo stage 2")
    return song


def write_stage1(folder: Path, song: SongCodes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(STAGE1_FILES, (song.ids, song.vocal, song.inst), strict=True):
        np.save(folder / name, array)


def write_stage2(folder: Path, song: SongCodes) -> None:
    for name, array in zip(STAGE2_FILES, (song.vocal8, song.inst8), strict=True):
        np.save(folder / name, array)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that already holds files unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise SongFolderError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SongFolderError(f"--out {out} is not empty (an earlier song?); pass --overwrite or a new folder")


def clear_earlier(out: Path) -> None:
    """Remove what an earlier run wrote into ``out`` (its report and song folders); other files stay."""
    (out / REPORT).unlink(missing_ok=True)
    for path in out.iterdir() if out.is_dir() else ():
        if path.is_dir() and _SONG_DIR.fullmatch(path.name):
            shutil.rmtree(path)
