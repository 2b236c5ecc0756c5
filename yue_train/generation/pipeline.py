"""The song pipeline: prompts -> stage 1 (section by section) -> stage 2 -> split tracks -> audio.

``yue-infer generate``, ``yue-eval --generate``, the evaluation inside training and ``YuE.generate`` all
run :func:`generate_songs`, so a song is made by the same code wherever it is generated. Each song is
planned first (:func:`plan_song`: prompts built and checked against the model's window, cheap and before
any weights load), then every song's stage 1 runs, then one batched stage 2 over all their tracks, then
the codec; :func:`generate_into` writes the songs' folders as they come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format.parsing import parse_stage1_output
from yue_train.generation.prompts import PromptInputError, Stage1Prompts, build_stage1_prompts
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.song_folder import SongCodes, song_dir, write_stage1, write_stage2
from yue_train.generation.stage1 import SectionStats, generate_stage1
from yue_train.generation.stage2 import generate_stage2


@dataclass
class SongPlan:
    """What stage 1 runs for one prompt: its prompts, how many sections, and the song it continues."""

    genres: str
    lyrics: str
    prompts: Stage1Prompts
    n_sections: int  # sections to generate
    following: list[seq.DocBuilder]  # the prompts appended before each section after the first
    has_reference: bool
    kept: SongCodes | None = None  # the song continued: its codes stay, the new sections follow


@dataclass
class GeneratedSong:
    """One generated song in memory. Codes are int16 X-Codec codes: ``stage1_*`` codebook 0 ``(1, T)``,
    ``stage2_*`` all 8 codebooks ``(8, T)``. ``audio`` (with a codec): ``vocal_16k``, ``inst_16k``,
    ``mix_16k`` and, with upsamplers, ``vocal_44k``, ``inst_44k``, ``mix_44k`` and ``final``; rates in
    ``sample_rates``. A continued song's codes start with the kept song's."""

    seed: int
    stage1_ids: np.ndarray  # the whole stage-1 sequence: prompts and generated tokens
    stage1_vocal: np.ndarray
    stage1_inst: np.ndarray
    sections: list[SectionStats]
    stage2_vocal: np.ndarray | None = None
    stage2_inst: np.ndarray | None = None
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    sample_rates: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.stage1_vocal.shape[1] / cl.FRAMES_PER_SECOND

    def mix(self) -> tuple[np.ndarray, int]:
        """The best mix there is (``final``, else ``mix_16k``) and its sample rate."""
        for name in ("final", "mix_16k"):
            if name in self.audio:
                return self.audio[name], self.sample_rates[name]
        raise ValueError("this song has no audio: load YuE with a codec to decode it")

    def codes(self) -> SongCodes:
        return SongCodes(self.stage1_ids, self.stage1_vocal, self.stage1_inst, self.stage2_vocal, self.stage2_inst)


def plan_song(
    tokenizer,
    genres: str,
    lyrics: str,
    sampling: SamplingConfig,
    window: int,
    *,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    n_sections: int | None = None,
    kept: SongCodes | None = None,
) -> SongPlan:
    """The prompts of one song, the first ``n_sections`` sections (all when None). A new song's first prompt
    must leave room for ``sampling.max_new_tokens`` in the stage-1 model's ``window``; a continued song
    (``kept``) appends every section's prompt to its sequence, windowed like any later section. Raises
    :class:`PromptInputError` or :class:`~yue_train.format.sequences.SequenceError`."""
    prompts = build_stage1_prompts(tokenizer, genres, lyrics, reference)
    n = len(prompts.sections) if n_sections is None else min(n_sections, len(prompts.sections))
    following = [seq.next_section_prompt(tokenizer, s) for s in prompts.sections[1 if kept is None else 0 : n]]
    if kept is None and len(prompts.first) + sampling.max_new_tokens + 1 > window:
        raise PromptInputError(
            f"the first prompt has {len(prompts.first):,} tokens; with {sampling.max_new_tokens:,} new tokens "
            f"it exceeds the stage-1 model's {window:,}-token window: shorten the reference "
            "(--ref-start/--ref-end) or the lyrics"
        )
    return SongPlan(genres, lyrics, prompts, n, following, reference is not None, kept)


def _stage1(model: torch.nn.Module, plan: SongPlan, sampling: SamplingConfig, seed: int, progress: bool):
    kept = plan.kept
    history = None if kept is None else kept.ids
    first = plan.prompts.first if kept is None else None
    res = generate_stage1(model, first, plan.following, sampling, seed=seed, progress=progress, history=history)
    if kept is None:
        vocal, inst = parse_stage1_output(res.ids, has_reference=plan.has_reference)
    else:  # the new sections' codes follow the kept ones
        vocal, inst = parse_stage1_output(res.ids[len(kept.ids) :])
        vocal, inst = np.concatenate([kept.vocal, vocal], axis=1), np.concatenate([kept.inst, inst], axis=1)
    return GeneratedSong(seed, res.ids, vocal, inst, res.sections)


SongHook = Callable[[int, GeneratedSong], None]
ModelOrLoader = torch.nn.Module | Callable[[], torch.nn.Module]


def _model(model: ModelOrLoader) -> torch.nn.Module:
    return model if isinstance(model, torch.nn.Module) else model()


@torch.no_grad()
def generate_songs(
    stage1: ModelOrLoader,
    songs: Sequence[tuple[SongPlan, int]],
    sampling: SamplingConfig,
    *,
    stage2: ModelOrLoader | None = None,
    codec=None,
    stage2_batch_size: int = 16,
    progress: bool = False,
    after_stage1: SongHook | None = None,
    after_stage2: SongHook | None = None,
) -> tuple[list[GeneratedSong], dict[str, float]]:
    """One song per (plan, seed): stage 1 of each, then stage 2 of all when ``stage2`` is given (a continued
    song's stage 2 runs over the frames its kept stage-2 codes do not cover), then audio when ``codec`` is
    given too. ``after_stage1``/``after_stage2`` see each song (by index) as soon as that stage is done, to
    write it. A model given as a loader (a function returning it) is loaded when its stage starts and
    dropped when it ends, so the two stages never hold memory together. Returns the songs and the seconds
    each stage spent generating (``stage1_s``, ``stage2_s``, ``decode_s``; loading not counted)."""
    model = _model(stage1)
    t0 = time.perf_counter()
    out: list[GeneratedSong] = []
    for k, (plan, seed) in enumerate(songs):
        out.append(_stage1(model, plan, sampling, seed, progress))
        if after_stage1 is not None:
            after_stage1(k, out[-1])
    timings = {"stage1_s": time.perf_counter() - t0}
    del model
    if stage2 is None:
        return out, timings
    model = _model(stage2)
    t0 = time.perf_counter()
    starts = [0 if plan.kept is None else plan.kept.stage2_frames for plan, _ in songs]
    tracks = [
        t[0, start:] for song, start in zip(out, starts, strict=True) for t in (song.stage1_vocal, song.stage1_inst)
    ]
    new8 = generate_stage2(model, tracks, batch_size=stage2_batch_size, progress=progress)
    timings["stage2_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, ((plan, _), song) in enumerate(zip(songs, out, strict=True)):
        song.stage2_vocal, song.stage2_inst = new8[2 * k], new8[2 * k + 1]
        if starts[k]:
            kept = plan.kept
            song.stage2_vocal = np.concatenate([kept.vocal8, song.stage2_vocal.astype(kept.vocal8.dtype)], axis=1)
            song.stage2_inst = np.concatenate([kept.inst8, song.stage2_inst.astype(kept.inst8.dtype)], axis=1)
        if codec is not None:
            from yue_train.codec.playback import render_song

            for name, (wave, rate) in render_song(codec, song.stage2_vocal, song.stage2_inst).items():
                song.audio[name], song.sample_rates[name] = wave, rate
        if after_stage2 is not None:
            after_stage2(k, song)
    timings["decode_s"] = time.perf_counter() - t0
    return out, timings


def generate_into(
    out: Path,
    stage1: ModelOrLoader,
    songs: Sequence[tuple[SongPlan, int]],
    sampling: SamplingConfig,
    entries: list[dict[str, Any]],
    *,
    audio_names: Callable[[Path], str] = str,
    **options: Any,
) -> dict[str, float]:
    """:func:`generate_songs` written into ``out``: song ``k``'s codes into ``out/songNN/`` as each stage
    ends, with its audio files (named by ``audio_names``) when there is a codec. ``entries[k]``, the
    report entry of song ``k``, gets its ``sections``, ``frames`` and ``audio``. ``options`` go to
    :func:`generate_songs`; returns its timings."""

    def stage1_done(k: int, song: GeneratedSong) -> None:
        write_stage1(song_dir(out, k), song.codes())
        entries[k].update(sections=[asdict(s) for s in song.sections], frames=int(song.stage1_vocal.shape[1]))

    def stage2_done(k: int, song: GeneratedSong) -> None:
        write_stage2(song_dir(out, k), song.codes())
        if song.audio:
            from yue_train.codec.playback import save_song

            rendered = {name: (wave, song.sample_rates[name]) for name, wave in song.audio.items()}
            files = save_song(rendered, song_dir(out, k), "song")
            entries[k]["audio"] = {name: audio_names(p) for name, p in files.items()}

    _, timings = generate_songs(stage1, songs, sampling, after_stage1=stage1_done, after_stage2=stage2_done, **options)
    return timings
