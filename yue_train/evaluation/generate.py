"""``yue-eval --generate``: one song per prompt of a prompt set into a folder that
:func:`yue_train.evaluation.run.evaluate_folder` then scores, with ``yue-infer generate``'s options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the module loads without torch: yue-eval's parser imports it
    from yue_train.generation.sampling import SamplingConfig


@dataclass
class PromptSetOptions:
    prompts: Path | None = None  # JSONL of {"id", "genres", "lyrics", "reference"?}
    out: Path | None = None
    stage1_model: str | None = None
    stage2_model: str | None = None  # needed for audio
    codec: Path | None = None
    tokenizer: str | None = None
    adapters: list[str] = field(default_factory=list)
    adapter: str | None = None  # which loaded adapter is active (default: the first)
    n_sections: int | None = None
    seed: int = 42  # of the first song; the next ones count up
    stage2_batch_size: int = 16
    device: str = "auto"
    overwrite: bool = False
    sampling: SamplingConfig | None = None  # None: the defaults
    progress: bool = True


def generate_prompt_set(opts: PromptSetOptions, note: Callable[[str], None] = print) -> Path:
    """Generate one song per prompt of ``opts.prompts`` into ``opts.out``, which it returns. Everything that
    needs no weights is checked (a GenerateInputError, one line) before any model loads."""
    from yue_train.codec.folder import check_codec_folder
    from yue_train.devices import resolve_device
    from yue_train.generation import inputs
    from yue_train.generation.loading import load_codec, load_lm, load_stage2
    from yue_train.generation.sampling import SamplingConfig
    from yue_train.generation.song_folder import SongFolderError, check_out, clear_earlier
    from yue_train.generation.songs import generate_song_set, read_prompt_set
    from yue_train.tokenizer import load_tokenizer

    fail = inputs.GenerateInputError
    if opts.stage1_model is None or opts.prompts is None or opts.out is None:
        raise fail("--generate needs --stage1-model, --prompts and --out")
    if opts.codec is not None and opts.stage2_model is None:
        raise fail("--codec needs --stage2-model: audio is decoded from stage 2's 8 codebooks")
    if opts.codec is not None:
        check_codec_folder(opts.codec, "--codec", fail)
    sampling = opts.sampling or SamplingConfig()
    inputs.check_generation_numbers(sampling, 1, opts.seed, opts.n_sections, opts.stage2_batch_size)
    try:
        check_out(opts.out, opts.overwrite)
    except SongFolderError as e:
        raise fail(str(e)) from None
    prompts = read_prompt_set(opts.prompts)
    tokenizer = load_tokenizer(opts.tokenizer)
    if opts.stage2_model is not None:
        inputs.check_models(tokenizer, opts.stage1_model, opts.stage2_model)
    else:
        inputs.check_model_ref("--stage1-model", opts.stage1_model)
    device = resolve_device(opts.device)
    stage1 = load_lm(opts.stage1_model, device, opts.adapters or None, opts.adapter)
    stage2 = load_stage2(opts.stage2_model, device) if opts.stage2_model else None
    codec = load_codec(opts.codec, device)
    if opts.overwrite:
        clear_earlier(opts.out)
    report = generate_song_set(
        stage1, tokenizer, prompts, sampling, opts.out, seed=opts.seed, n_sections=opts.n_sections,
        stage2=stage2, codec=codec, stage2_batch_size=opts.stage2_batch_size, progress=opts.progress,
    )  # fmt: skip
    if codec is None:
        note("yue-eval: no --codec (and --stage2-model): the songs are codes only; audio metrics are skipped")
    note(f"yue-eval: {len(report['songs'])} song(s), {report['music_seconds']:.1f} s of music -> {opts.out}")
    return opts.out
