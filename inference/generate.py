"""``yue-infer generate``: genre + lyrics -> stage-1 codes -> stage-2 codes -> stems and mixes.

Everything the released pipeline does, on the training code's own pieces: prompts from
:mod:`yue_train.format.sequences`, models through :mod:`yue_train.models.loading` (optionally with LoRA
adapters), audio through :mod:`yue_train.codec`. Inputs are checked before any model is loaded
(:mod:`inference.inputs`); output folders are :mod:`yue_train.generation.song_folder`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.inputs import STAGE2_MIN_VOCAB, GenerateInputError, GenerateOptions, check_inputs
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.generation.prompts import PromptInputError, build_stage1_prompts, load_reference
from yue_train.generation.song_folder import REPORT, SongCodes, clear_earlier, song_dir, write_stage1, write_stage2
from yue_train.generation.songs import section_prompts, stage1_song
from yue_train.generation.stage2 import generate_stage2
from yue_train.training.output import note


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_lm(path: str, device: torch.device, adapters: list[str] | None = None, active: str | None = None):
    """A causal LM from a folder or hub id (training's loader), with PEFT adapters loaded by name
    (``a0``, ``a1``, ...; switch with ``model.set_adapter``)."""
    from yue_train.models.loading import ModelSpec, build_model

    model = build_model(ModelSpec(path=path), device)
    if adapters:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapters[0], adapter_name="a0")
        for n, adapter in enumerate(adapters[1:], start=1):
            model.load_adapter(adapter, adapter_name=f"a{n}")
        names = {f"a{n}": a for n, a in enumerate(adapters)}
        chosen = active or "a0"
        if chosen not in names:
            chosen = next((k for k, v in names.items() if v == active), None)
            if chosen is None:
                raise GenerateInputError(f"--adapter {active!r} is not one of the loaded adapters {adapters}")
        model.set_adapter(chosen)
    return model.eval()


def _audio_reference(opts: GenerateOptions, codec) -> tuple[np.ndarray, np.ndarray] | None:
    from yue_train.codec.references import encode_dual_reference, encode_reference

    if opts.ref_audio is not None:
        codes = encode_reference(codec, opts.ref_audio)
        return seq.reference_ids_from_codes(opts.ref_start, opts.ref_end, codes=codes)
    if opts.ref_vocal_audio is not None or opts.ref_inst_audio is not None:
        if opts.ref_vocal_audio is None or opts.ref_inst_audio is None:
            raise GenerateInputError("a dual audio reference needs both --ref-vocal-audio and --ref-inst-audio")
        v, i = encode_dual_reference(codec, opts.ref_vocal_audio, opts.ref_inst_audio)
        return seq.reference_ids_from_codes(opts.ref_start, opts.ref_end, vocal_codes=v, inst_codes=i)
    return None


def load_stage2(path: str, device: torch.device) -> torch.nn.Module:
    """The stage-2 model, its output layer checked to cover every stage-2 id."""
    s2 = load_lm(path, device)
    vocab_size = s2.get_output_embeddings().weight.shape[0]
    if vocab_size < STAGE2_MIN_VOCAB:
        raise GenerateInputError(f"stage-2 model {path} has {vocab_size} output ids; stage 2 needs {STAGE2_MIN_VOCAB}")
    return s2


def run_generate(opts: GenerateOptions) -> dict[str, Any]:
    """Generate ``opts.n_songs`` songs into ``opts.out``; returns the report also written as ``report.json``.

    With ``opts.continue_from`` each song is that song's codes, kept as they are (both stages), followed by
    the new sections: stage 1 continues its sequence, stage 2 runs over the new frames only, in chunks
    that start where the kept stage-2 codes end.
    """
    started = time.perf_counter()
    checked = check_inputs(opts)
    tokenizer, kept = checked.tokenizer, checked.continuation
    device = resolve_device(opts.device)
    codec = None
    if opts.codec is not None:
        from yue_train.codec.model import YueCodec

        codec = YueCodec.from_folder(opts.codec, device=device)
    try:
        reference = _audio_reference(opts, codec) if codec is not None else None
        if reference is None:
            reference = load_reference(
                opts.ref_start, opts.ref_end, opts.ref_codes, opts.ref_vocal_codes, opts.ref_inst_codes
            )
        prompts = build_stage1_prompts(tokenizer, checked.genres, checked.lyrics, reference)
    except (PromptInputError, seq.SequenceError) as e:
        raise GenerateInputError(str(e)) from None
    history = None if kept is None else kept.ids
    n, following = section_prompts(tokenizer, prompts, opts.n_sections, opts.sampling, checked.window, history)

    for line in checked.warnings:  # the inputs are fine: said once, before any weights load
        note(f"yue-infer generate: {line}")
    s1 = load_lm(opts.stage1_model, device, opts.adapters, opts.adapter)
    timings: dict[str, float] = {"load_s": time.perf_counter() - started}
    if opts.overwrite:
        clear_earlier(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    songs, codes, tracks = [], [], []
    start2 = 0 if kept is None else kept.stage2_frames  # stage 2 starts here; earlier frames are kept
    t0 = time.perf_counter()
    for k in range(opts.n_songs):
        res, vocal, inst = stage1_song(
            s1, prompts, following, opts.sampling, opts.seed + k, reference is not None, history, opts.progress
        )
        if kept is not None:  # the continued song: its kept codes, then the new sections
            vocal, inst = np.concatenate([kept.vocal, vocal], axis=1), np.concatenate([kept.inst, inst], axis=1)
        song = SongCodes(res.ids, vocal, inst)
        write_stage1(song_dir(opts.out, k), song)
        songs.append(
            {
                "dir": str(song_dir(opts.out, k)),
                "genres": checked.genres,
                "lyrics": checked.lyrics,
                "seed": opts.seed + k,
                "sections_requested": len(prompts.sections),
                "sections": [asdict(s) for s in res.sections],
                "frames": int(vocal.shape[1]),
                "new_frames": int(vocal.shape[1]) - (0 if kept is None else int(kept.vocal.shape[1])),
            }
        )
        codes.append(song)
        tracks += [vocal[0, start2:], inst[0, start2:]]
    timings["stage1_s"] = time.perf_counter() - t0
    del s1

    s2 = load_stage2(opts.stage2_model, device)
    t0 = time.perf_counter()
    new8 = generate_stage2(s2, tracks, batch_size=opts.stage2_batch_size, progress=opts.progress)
    timings["stage2_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, (song, info) in enumerate(zip(codes, songs, strict=True)):
        song.vocal8, song.inst8 = new8[2 * k], new8[2 * k + 1]
        if start2:
            song.vocal8 = np.concatenate([kept.vocal8, song.vocal8.astype(kept.vocal8.dtype)], axis=1)
            song.inst8 = np.concatenate([kept.inst8, song.inst8.astype(kept.inst8.dtype)], axis=1)
        write_stage2(song_dir(opts.out, k), song)
        if codec is not None:
            from yue_train.codec.playback import render_song, save_song

            files = save_song(render_song(codec, song.vocal8, song.inst8), song_dir(opts.out, k), "song")
            info["audio"] = {name: str(p) for name, p in files.items()}
    timings["decode_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    seconds = sum(s["new_frames"] for s in songs) / cl.FRAMES_PER_SECOND
    report = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "n_sections": n,
        "songs": songs,
        "timings": timings,
        "music_seconds": seconds,  # generated in this run (a continued song's kept part is not counted)
        "real_time_factor": (timings["stage1_s"] + timings["stage2_s"]) / seconds if seconds else None,
    }
    (opts.out / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
