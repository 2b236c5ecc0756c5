"""``yue-infer generate``: genre + lyrics -> stage-1 codes -> stage-2 codes -> stems and mixes.

Everything the released pipeline does, on the training code's own pieces: prompts from
:mod:`yue_train.format.sequences`, models through :mod:`yue_train.models.loading` (optionally with LoRA
adapters), audio through :mod:`yue_train.codec`. Inputs are checked before any model is loaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.prompts import (
    PromptInputError,
    Stage1Prompts,
    build_stage1_prompts,
    load_reference,
    read_text_file,
)
from inference.sampling import SamplingConfig
from inference.stage1 import MODEL_WINDOW, Stage1Result, generate_stage1
from inference.stage2 import generate_stage2
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format.parsing import parse_stage1_output
from yue_train.tokenizer import load_tokenizer

STAGE2_MIN_VOCAB = cl.codebook_range(cl.STAGE2_CODEBOOKS - 1)[1]  # 53,526: every stage-2 id must exist


@dataclass
class GenerateOptions:
    genre_txt: Path
    lyrics_txt: Path
    out: Path
    stage1_model: str
    stage2_model: str
    codec: Path | None = None
    tokenizer: str | None = None
    adapters: list[str] = field(default_factory=list)
    adapter: str | None = None  # which loaded adapter is active (default: the first)
    n_sections: int | None = None
    ref_audio: Path | None = None
    ref_vocal_audio: Path | None = None
    ref_inst_audio: Path | None = None
    ref_codes: Path | None = None
    ref_vocal_codes: Path | None = None
    ref_inst_codes: Path | None = None
    ref_start: float = 0.0
    ref_end: float = 30.0
    continue_from: Path | None = None
    n_songs: int = 1
    seed: int = 42
    stage2_batch_size: int = 16
    device: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    progress: bool = True


class GenerateInputError(ValueError):
    """Inputs generation cannot run on; raised before any model is loaded where possible."""


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


def check_inputs(opts: GenerateOptions):
    """Read and validate everything that needs no model; returns (tokenizer, prompts, reference codes)."""
    if opts.codec is not None and not (Path(opts.codec) / "yue_codec.json").is_file():
        raise GenerateInputError(f"--codec {opts.codec}: not a converted codec folder (run `yue-prep convert-codec`)")
    needs_codec = any(x is not None for x in (opts.ref_audio, opts.ref_vocal_audio, opts.ref_inst_audio))
    if needs_codec and opts.codec is None:
        raise GenerateInputError("an audio reference needs --codec to encode it (or pass --ref-codes)")
    genres = read_text_file(opts.genre_txt, "genre")
    lyrics = read_text_file(opts.lyrics_txt, "lyrics")
    tokenizer = load_tokenizer(opts.tokenizer)
    check_models(tokenizer, opts.stage1_model, opts.stage2_model)
    return tokenizer, genres, lyrics


def check_models(tokenizer, stage1_model: str, stage2_model: str) -> None:
    """Both models' vocabularies against what the stages need, from their config files (no weights)."""
    from yue_train.models.loading import ModelSpec, load_model_config

    for which, path, needed in (
        ("stage-1", stage1_model, tokenizer.vocab_size),
        ("stage-2", stage2_model, STAGE2_MIN_VOCAB),
    ):
        try:
            vocab_size = load_model_config(ModelSpec(path=path)).vocab_size
        except (OSError, ValueError) as e:
            raise GenerateInputError(f"{which} model {path}: cannot read its config ({e})") from None
        if vocab_size < needed:
            raise GenerateInputError(
                f"{which} model {path} has {vocab_size:,} ids; YuE's {which} needs at least {needed:,}"
            )


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


def section_prompts(
    tokenizer,
    prompts: Stage1Prompts,
    n_sections: int | None,
    sampling: SamplingConfig,
    history: np.ndarray | None = None,
) -> tuple[int, list[seq.DocBuilder]]:
    """(sections to generate, the prompts appended before each section after the first); with ``history``
    (a song to continue) every section's prompt is appended to it. The first context must leave room for
    ``sampling.max_new_tokens`` in the model window."""
    n = len(prompts.sections) if n_sections is None else min(n_sections, len(prompts.sections))
    following = [seq.next_section_prompt(tokenizer, s) for s in prompts.sections[1 if history is None else 0 : n]]
    first_len = len(prompts.first) if history is None else len(history) + len(following[0])
    if first_len + sampling.max_new_tokens + 1 > MODEL_WINDOW:
        raise GenerateInputError(
            f"the first prompt has {first_len:,} tokens; with {sampling.max_new_tokens:,} new tokens it exceeds "
            f"the {MODEL_WINDOW:,}-token window: shorten the reference (--ref-start/--ref-end) or the lyrics"
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


def load_stage2(path: str, device: torch.device) -> torch.nn.Module:
    """The stage-2 model, its output layer checked to cover every stage-2 id."""
    s2 = load_lm(path, device)
    vocab_size = s2.get_output_embeddings().weight.shape[0]
    if vocab_size < STAGE2_MIN_VOCAB:
        raise GenerateInputError(f"stage-2 model {path} has {vocab_size} output ids; stage 2 needs {STAGE2_MIN_VOCAB}")
    return s2


def run_generate(opts: GenerateOptions) -> dict[str, Any]:
    """Generate ``opts.n_songs`` songs into ``opts.out``; returns the report also written as ``report.json``."""
    started = time.perf_counter()
    tokenizer, genres, lyrics = check_inputs(opts)
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
        prompts = build_stage1_prompts(tokenizer, genres, lyrics, reference)
    except (PromptInputError, seq.SequenceError) as e:
        raise GenerateInputError(str(e)) from None
    history = None
    if opts.continue_from is not None:
        prev = Path(opts.continue_from)
        missing = [f for f in ("stage1_ids.npy", "stage1_vocal.npy", "stage1_inst.npy") if not (prev / f).is_file()]
        if missing:
            raise GenerateInputError(
                f"--continue-from {prev}: missing {', '.join(missing)} (give a song folder of yue-infer)"
            )
        history = np.load(prev / "stage1_ids.npy")
    n, following = section_prompts(tokenizer, prompts, opts.n_sections, opts.sampling, history)

    s1 = load_lm(opts.stage1_model, device, opts.adapters, opts.adapter)
    timings: dict[str, float] = {"load_s": time.perf_counter() - started}
    opts.out.mkdir(parents=True, exist_ok=True)
    songs, tracks = [], []
    t0 = time.perf_counter()
    for k in range(opts.n_songs):
        res, vocal, inst = stage1_song(
            s1, prompts, following, opts.sampling, opts.seed + k, reference is not None, history, opts.progress
        )
        if history is not None:  # the continued song: its earlier codes, then the new sections
            prev = Path(opts.continue_from)
            vocal = np.concatenate([np.load(prev / "stage1_vocal.npy"), vocal], axis=1)
            inst = np.concatenate([np.load(prev / "stage1_inst.npy"), inst], axis=1)
        song_dir = opts.out / f"song{k:02d}"
        song_dir.mkdir(exist_ok=True)
        np.save(song_dir / "stage1_ids.npy", res.ids)
        np.save(song_dir / "stage1_vocal.npy", vocal)
        np.save(song_dir / "stage1_inst.npy", inst)
        songs.append(
            {
                "dir": str(song_dir),
                "seed": opts.seed + k,
                "sections": [asdict(s) for s in res.sections],
                "frames": int(vocal.shape[1]),
            }
        )
        tracks += [vocal[0], inst[0]]
    timings["stage1_s"] = time.perf_counter() - t0
    del s1

    s2 = load_stage2(opts.stage2_model, device)
    t0 = time.perf_counter()
    codes = generate_stage2(s2, tracks, batch_size=opts.stage2_batch_size, progress=opts.progress)
    timings["stage2_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k, song in enumerate(songs):
        vocal8, inst8 = codes[2 * k], codes[2 * k + 1]
        song_dir = Path(song["dir"])
        np.save(song_dir / "stage2_vocal.npy", vocal8)
        np.save(song_dir / "stage2_inst.npy", inst8)
        if codec is not None:
            from yue_train.codec.playback import render_song, save_song

            files = save_song(render_song(codec, vocal8, inst8), song_dir, "song")
            song["audio"] = {name: str(p) for name, p in files.items()}
    timings["decode_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started
    seconds = sum(s["frames"] for s in songs) / cl.FRAMES_PER_SECOND
    report = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "n_sections": n,
        "songs": songs,
        "timings": timings,
        "music_seconds": seconds,
        "real_time_factor": (timings["stage1_s"] + timings["stage2_s"]) / seconds if seconds else None,
    }
    (opts.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
