"""Songs from models already in memory: stage 1 section by section, stage 2, the codec, written as the song
folders and ``report.json`` that ``yue-infer generate`` writes (:mod:`.song_folder`).

``yue-infer generate`` runs one genre + lyrics pair; :func:`generate_song_set` runs a prompt set (one song
per prompt), which is what ``yue-eval --generate`` and the evaluation inside training use.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format.parsing import parse_stage1_output
from yue_train.generation.prompts import PromptInputError, Stage1Prompts, build_stage1_prompts
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.song_folder import REPORT, SongCodes, song_dir, write_stage1, write_stage2
from yue_train.generation.stage1 import Stage1Result, context_window, generate_stage1
from yue_train.generation.stage2 import generate_stage2


def section_prompts(
    tokenizer,
    prompts: Stage1Prompts,
    n_sections: int | None,
    sampling: SamplingConfig,
    window: int,
    history: np.ndarray | None = None,
) -> tuple[int, list[seq.DocBuilder]]:
    """(sections to generate, the prompts appended before each section after the first); with ``history``
    (a song to continue) every section's prompt is appended to it. A new song's first prompt must leave
    room for ``sampling.max_new_tokens`` in the stage-1 model's ``window``."""
    n = len(prompts.sections) if n_sections is None else min(n_sections, len(prompts.sections))
    following = [seq.next_section_prompt(tokenizer, s) for s in prompts.sections[1 if history is None else 0 : n]]
    # A continued song's context is windowed like any later section's; the first prompt must fit whole.
    if history is None and len(prompts.first) + sampling.max_new_tokens + 1 > window:
        raise PromptInputError(
            f"the first prompt has {len(prompts.first):,} tokens; with {sampling.max_new_tokens:,} new tokens "
            f"it exceeds the stage-1 model's {window:,}-token window: shorten the reference "
            "(--ref-start/--ref-end) or the lyrics"
        )
    return n, following


def stage1_song(
    model: torch.nn.Module,
    prompts: Stage1Prompts,
    following: list[seq.DocBuilder],
    sampling: SamplingConfig,
    seed: int,
    has_reference: bool,
    history: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[Stage1Result, np.ndarray, np.ndarray]:
    """One song's stage 1: (the result, vocal codes, instrumental codes), codes ``(1, T)`` of codebook 0.
    With ``history`` the codes are those of the new sections only."""
    first = prompts.first if history is None else None
    res = generate_stage1(model, first, following, sampling, seed=seed, progress=progress, history=history)
    if history is None:
        vocal, inst = parse_stage1_output(res.ids, has_reference=has_reference)
    else:
        vocal, inst = parse_stage1_output(res.ids[len(history) :])
    return res, vocal, inst


# ------------------------------------------------------------------------------------ prompt sets
@dataclass
class SongPrompt:
    """One entry of a prompt set: what to sing, and optionally the voice it should sound like."""

    id: str
    genres: str
    lyrics: str
    reference: str | None = None  # audio of the target voice (voice_similarity compares against it)


def read_prompt_set(path: str | Path) -> list[SongPrompt]:
    """A prompt set: a JSONL file, one ``{"id", "genres", "lyrics", "reference"?}`` object per line.
    ``reference`` is an audio path, relative to the file's folder unless absolute. Raises
    :class:`PromptInputError` naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PromptInputError(f"prompt set {path} not found (a JSONL of {{id, genres, lyrics}} per line)") from None
    prompts: list[SongPrompt] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"prompt set {path} line {n}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptInputError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(entry, dict):
            raise PromptInputError(f"{where}: give an object {{id, genres, lyrics}}")
        unknown = sorted(set(entry) - {"id", "genres", "lyrics", "reference"})
        if unknown:
            raise PromptInputError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: id, genres, lyrics, reference)"
            )
        for key in ("genres", "lyrics"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise PromptInputError(f"{where}: {key!r} must be a non-empty string")
        ref = entry.get("reference")
        if ref is not None:
            ref_path = Path(ref) if Path(ref).is_absolute() else path.parent / ref
            if not ref_path.is_file():
                raise PromptInputError(f"{where}: reference audio {ref_path} not found")
            ref = str(ref_path)
        prompts.append(SongPrompt(str(entry.get("id", f"prompt{n}")), entry["genres"], entry["lyrics"], ref))
    if not prompts:
        raise PromptInputError(f"prompt set {path} holds no prompts")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PromptInputError(f"prompt set {path}: id {dup!r} appears twice; ids name the songs")
    return prompts


# ------------------------------------------------------------------------------------- song sets
@torch.no_grad()
def generate_song_set(
    stage1: torch.nn.Module,
    tokenizer,
    prompts: list[SongPrompt],
    sampling: SamplingConfig,
    out: str | Path,
    *,
    seed: int = 42,
    n_sections: int | None = None,
    stage2: torch.nn.Module | None = None,
    codec: Any = None,
    stage2_batch_size: int = 16,
    progress: bool = False,
) -> dict[str, Any]:
    """One song per prompt into ``out`` (``songNN/`` folders and ``report.json``, as ``yue-infer generate``
    writes them), the first ``n_sections`` sections of each (all when None); stage 2 when ``stage2`` is
    given, audio files when ``codec`` is given too. Returns the report. A prompt too long for the model raises :class:`PromptInputError`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    window = context_window(stage1)
    songs: list[dict[str, Any]] = []
    codes: list[SongCodes] = []
    for k, prompt in enumerate(prompts):
        try:
            built = build_stage1_prompts(tokenizer, prompt.genres, prompt.lyrics, None)
        except seq.SequenceError as e:
            raise PromptInputError(f"prompt {prompt.id!r}: {e}") from None
        n, following = section_prompts(tokenizer, built, n_sections, sampling, window)
        res, vocal, inst = stage1_song(stage1, built, following, sampling, seed + k, False, progress=progress)
        song = SongCodes(res.ids, vocal, inst)
        write_stage1(song_dir(out, k), song)
        codes.append(song)
        songs.append(
            {
                "dir": song_dir(out, k).name,
                "id": prompt.id,
                "genres": prompt.genres,
                "lyrics": prompt.lyrics,
                "target_voice": prompt.reference,
                "seed": seed + k,
                "sections_requested": n,
                "sections": [asdict(s) for s in res.sections],
                "frames": int(vocal.shape[1]),
            }
        )
    timings = {"stage1_s": time.perf_counter() - started}
    if stage2 is not None:
        t0 = time.perf_counter()
        tracks = [t[0] for s in codes for t in (s.vocal, s.inst)]
        new8 = generate_stage2(stage2, tracks, batch_size=stage2_batch_size, progress=progress)
        timings["stage2_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k, (song, info) in enumerate(zip(codes, songs, strict=True)):
            song.vocal8, song.inst8 = new8[2 * k], new8[2 * k + 1]
            write_stage2(song_dir(out, k), song)
            if codec is not None:
                from yue_train.codec.playback import render_song, save_song

                files = save_song(render_song(codec, song.vocal8, song.inst8), song_dir(out, k), "song")
                info["audio"] = {name: p.name for name, p in files.items()}
        timings["decode_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    seconds = sum(s["frames"] for s in songs) / cl.FRAMES_PER_SECOND
    report = {
        "prompts": len(prompts),
        "sampling": asdict(sampling),
        "songs": songs,
        "timings": timings,
        "music_seconds": seconds,
    }
    (out / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
