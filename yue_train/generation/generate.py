"""``yue-infer generate`` as a library call: genre + lyrics files -> checked inputs -> models -> the song
pipeline (:mod:`.pipeline`) -> song folders and ``report.json`` (:mod:`.song_folder`).

Inputs are checked before any model is loaded (:mod:`.inputs`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from yue_train.devices import resolve_device
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.generation.inputs import GenerateInputError, GenerateOptions, check_inputs
from yue_train.generation.loading import load_codec, load_lm, load_stage2
from yue_train.generation.pipeline import generate_into, plan_song
from yue_train.generation.prompts import PromptInputError, load_reference
from yue_train.generation.reference import audio_reference, reference_ids
from yue_train.generation.song_folder import REPORT, clear_earlier, song_dir


def run_generate(opts: GenerateOptions, note: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate ``opts.n_songs`` songs into ``opts.out``; returns the report also written as ``report.json``.
    ``note`` shows the warnings about the inputs, before any weights load.

    With ``opts.continue_from`` each song is that song's codes, kept as they are (both stages), followed by
    the new sections: stage 1 continues its sequence, stage 2 runs over the new frames only, in chunks
    that start where the kept stage-2 codes end.
    """
    started = time.perf_counter()
    checked = check_inputs(opts)
    kept = checked.continuation
    device = resolve_device(opts.device)
    codec = load_codec(opts.codec, device)
    try:
        audio = audio_reference(opts.ref_audio, opts.ref_vocal_audio, opts.ref_inst_audio, opts.ref_start, opts.ref_end)
        if audio is not None:
            reference = reference_ids(audio, codec)
        else:
            reference = load_reference(
                opts.ref_start, opts.ref_end, opts.ref_codes, opts.ref_vocal_codes, opts.ref_inst_codes
            )
        plan = plan_song(
            checked.tokenizer, checked.genres, checked.lyrics, opts.sampling, checked.window,
            reference=reference, n_sections=opts.n_sections, kept=kept,
        )  # fmt: skip
    except (PromptInputError, seq.SequenceError) as e:
        raise GenerateInputError(str(e)) from None

    for line in checked.warnings:  # the inputs are fine: said once, before any weights load
        note(f"yue-infer generate: {line}")
    timings: dict[str, float] = {}

    def stage1_model() -> Any:
        s1 = load_lm(opts.stage1_model, device, opts.adapters, opts.adapter)
        timings["load_s"] = time.perf_counter() - started
        if opts.overwrite:  # the earlier songs go once the model has loaded
            clear_earlier(opts.out)
        opts.out.mkdir(parents=True, exist_ok=True)
        return s1

    infos: list[dict[str, Any]] = [
        {
            "dir": str(song_dir(opts.out, k)),
            "genres": checked.genres,
            "lyrics": checked.lyrics,
            "seed": opts.seed + k,
            "sections_requested": len(plan.prompts.sections),
        }
        for k in range(opts.n_songs)
    ]
    stage_timings = generate_into(
        opts.out, stage1_model, [(plan, info["seed"]) for info in infos], opts.sampling, infos,
        stage2=lambda: load_stage2(opts.stage2_model, device), codec=codec,
        stage2_batch_size=opts.stage2_batch_size, progress=opts.progress,
    )  # fmt: skip
    for info in infos:  # a continued song's kept part is not new
        info["new_frames"] = info["frames"] - (0 if kept is None else int(kept.vocal.shape[1]))
    timings.update(stage_timings)
    timings["total_s"] = time.perf_counter() - started
    seconds = sum(s["new_frames"] for s in infos) / cl.FRAMES_PER_SECOND
    report = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "n_sections": plan.n_sections,
        "songs": infos,
        "timings": timings,
        "music_seconds": seconds,  # generated in this run (a continued song's kept part is not counted)
        "real_time_factor": (timings["stage1_s"] + timings["stage2_s"]) / seconds if seconds else None,
    }
    (opts.out / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
