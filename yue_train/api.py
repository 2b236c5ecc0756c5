"""The Python API: generate songs, train a recipe and write token shards from a notebook, without files
of genres, lyrics or configs.

    from yue_train import YuE, build_shards, train

    yue = YuE.from_pretrained(stage1, stage2, codec=codec, tokenizer=tokenizer)
    song = yue.generate(genres="pop female bright", lyrics="[verse]\\n...")[0]
    song.audio["final"], song.stage2_vocal

    run = train("lora_s1", trainer={"max_steps": 100}, data={"train": [{"path": "data/cot"}]})
    build_shards(songs, "data/cot", mode="cot", tokenizer="tokenizer.model")

Every call runs the same code as the command lines: generation is :mod:`yue_train.generation.pipeline`,
training composes the recipe with :func:`yue_train.config.compose.compose_config` and runs the trainer
in this process, and shards come from ``yue-prep tokenize``'s writer (:mod:`yue_train.data.tokenize`).
Nothing else in ``yue_train`` imports this module (``yue_train.YuE`` etc. load it on first use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from yue_train.codec.folder import check_codec_folder
from yue_train.devices import resolve_device
from yue_train.format import sequences as seq
from yue_train.format.song import Song
from yue_train.generation.inputs import (
    GenerateInputError,
    check_adapter,
    check_generation_numbers,
    check_models,
    check_reference_window,
    stage1_module_names,
)
from yue_train.generation.loading import load_codec, load_lm, load_stage2
from yue_train.generation.pipeline import GeneratedSong, generate_songs, plan_song
from yue_train.generation.prompts import PromptInputError
from yue_train.generation.reference import Reference, reference_ids
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.stage1 import context_window
from yue_train.tokenizer import load_tokenizer

__all__ = [
    "GeneratedSong", "Reference", "YuE", "build_shards", "evaluate", "recipe_config", "train",
]  # fmt: skip


class YuE:
    """Both YuE stages (and optionally the codec) loaded once, generating from strings."""

    def __init__(self, stage1: Any, stage2: Any, tokenizer: Any, codec: Any = None) -> None:
        self.stage1, self.stage2, self.tokenizer, self.codec = stage1, stage2, tokenizer, codec

    @classmethod
    def from_pretrained(
        cls,
        stage1: str | Path,
        stage2: str | Path,
        codec: str | Path | None = None,
        tokenizer: str | Path | None = None,
        *,
        device: str = "auto",
        adapters: Sequence[str | Path] = (),
        adapter: str | None = None,
    ) -> YuE:
        """Stage-1 and stage-2 models (folders or hub ids), a converted codec folder (``yue-prep
        convert-codec``; without it only codes are generated) and YuE's ``tokenizer.model`` (without it
        the generated stand-in, whose text ids are not YuE's). ``adapters``: LoRA folders for stage 1,
        ``adapter`` the active one. Vocabularies are checked before any weights load."""
        tok = load_tokenizer(None if tokenizer is None else str(tokenizer))
        check_models(tok, str(stage1), str(stage2), flags=("stage1", "stage2"))
        names = stage1_module_names(str(stage1), "stage1") if adapters else None
        for a in adapters:  # configs only: a broken adapter is refused before the base model loads
            check_adapter(str(a), "adapters", names)
        if codec is not None:
            check_codec_folder(codec, "codec", GenerateInputError)
        dev = resolve_device(device)
        codec_model = load_codec(codec, dev)
        s1 = load_lm(str(stage1), dev, [str(a) for a in adapters], adapter)
        return cls(s1, load_stage2(str(stage2), dev), tok, codec_model)

    def generate(
        self,
        genres: str,
        lyrics: str,
        reference: Reference | None = None,
        *,
        n_songs: int = 1,
        seed: int = 42,
        n_sections: int | None = None,
        sampling: SamplingConfig | None = None,
        stage2_batch_size: int = 16,
        progress: bool = True,
        **sampling_options: Any,
    ) -> list[GeneratedSong]:
        """``n_songs`` songs (seeds ``seed``, ``seed + 1``, ...) for genre tags and ``[label]``-sectioned
        lyrics. ``sampling_options`` set fields of :class:`~yue_train.generation.sampling.SamplingConfig`
        (``max_new_tokens``, ``temperature``, ``top_p``, ``guidance_first``, ...). ``progress``: bars on
        stderr that count stage 1's tokens and stage 2's seconds of audio as they are made."""
        sampling = _sampling(sampling, sampling_options)
        check_generation_numbers(sampling, n_songs, seed, n_sections, stage2_batch_size, dash=False)
        if reference is not None:
            check_reference_window(reference.start, reference.end, ("Reference.start", "Reference.end"))
        try:
            ref = reference_ids(reference, self.codec) if reference is not None else None
            plan = plan_song(
                self.tokenizer, genres, lyrics, sampling, context_window(self.stage1),
                reference=ref, n_sections=n_sections,
            )  # fmt: skip
        except (PromptInputError, seq.SequenceError) as e:
            raise GenerateInputError(str(e)) from None
        songs, _ = generate_songs(
            self.stage1, [(plan, seed + k) for k in range(n_songs)], sampling, stage2=self.stage2,
            codec=self.codec, stage2_batch_size=stage2_batch_size, progress=progress,
        )  # fmt: skip
        return songs


def _sampling(base: SamplingConfig | None, options: Mapping[str, Any]) -> SamplingConfig:
    known = {f.name for f in dataclasses.fields(SamplingConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown sampling option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dataclasses.replace(base or SamplingConfig(), **options)


def recipe_config(
    recipe: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    *,
    recipes_dirs: Sequence[str | Path] | None = None,
    **options: Any,
) -> Any:
    """The resolved, schema-checked config of a recipe with overrides (what ``yue-train --print-config``
    shows). Overrides come as a mapping with dotted keys and/or as keyword arguments per config group: a
    mapping merges into the group's keys, a string picks one of its files (``lora="qkvo"``)."""
    from yue_train.config.compose import compose_config, group_choices

    choices, values = group_choices({**(overrides or {}), **options})
    return compose_config([f"recipe={recipe}", *choices], list(recipes_dirs or []) or None, values)


def train(
    recipe: str = "demo",
    overrides: Mapping[str, Any] | None = None,
    *,
    recipes_dirs: Sequence[str | Path] | None = None,
    **options: Any,
) -> Path:
    """Train ``recipe`` in this process (one process; ``./launch.sh`` for several) and return its run
    folder, which holds the resolved config, ``metrics.jsonl`` and the checkpoints. A re-run resumes.

        train("lora_s1", trainer={"max_steps": 100}, data={"train": [{"path": "data/shards/cot"}]})
    """
    from yue_train.training.strategies import destroy_process_group
    from yue_train.training.trainer import run_training

    cfg = recipe_config(recipe, overrides, recipes_dirs=recipes_dirs, **options)
    try:
        summary = run_training(cfg)
    finally:
        destroy_process_group()
    return Path(summary["run_dir"])


def evaluate(
    songs: str | Path,
    out: str | Path | None = None,
    *,
    metrics: str | Sequence[str] | None = None,
    reference: str | Path | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score a folder of songs as ``yue-eval`` does (a ``yue-infer generate`` output or audio files,
    optionally against a ``reference`` folder of audio); writes ``eval.json`` and ``report.html`` into
    ``out`` (default: the songs' folder) and returns what ``eval.json`` holds.

        evaluate("songs_out", metrics=["structure", "vocal_range"])["aggregate"]
    """
    import json

    from yue_train.evaluation.run import evaluate_folder

    names = metrics if metrics is None or isinstance(metrics, str) else list(metrics)
    opts = {k: dict(v) for k, v in (options or {}).items()}
    result = evaluate_folder(songs, out, names, opts, reference, progress=progress)
    return json.loads(result.eval_json.read_text())


def build_shards(
    songs: Iterable[Song],
    out: str | Path,
    mode: str = "cot",
    tokenizer: str | Path | None = None,
    *,
    icl_prompt: str = "dual",
    stage2_sources: Sequence[str] = ("mixture",),
    seed: int = 0,
    shard_docs: int = 1000,
    overwrite: bool = False,
    strict: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Token shards of in-memory :class:`~yue_train.format.song.Song` objects, written as ``yue-prep
    tokenize`` writes a manifest's (same documents, shard names and ``summary.json``); returns the
    summary. Songs that cannot be used are listed under ``rejected`` with the reason (``strict``: raise)."""
    from yue_train.data.tokenize import TokenizeOptions, run_tokenize

    opts = TokenizeOptions(
        manifest=None,
        out=Path(out),
        tokenizer=None if tokenizer is None else str(tokenizer),
        mode=mode,
        icl_prompt=icl_prompt,
        stage2_sources=tuple(stage2_sources),
        seed=seed,
        shard_docs=shard_docs,
        strict=strict,
        overwrite=overwrite,
        progress=progress,
    )
    summary, _ = run_tokenize(opts, songs=list(songs))
    return summary
