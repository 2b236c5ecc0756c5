"""``yue-infer generate``'s options, and the checks that need no model weights: files, folders, hub ids,
model and adapter configs, the output folder and the song to continue."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from inference.provenance import check_records
from yue_train.format import codec_layout as cl
from yue_train.generation.prompts import read_text_file
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.song_folder import SongCodes, SongFolderError, check_out, read_song
from yue_train.tokenizer import load_tokenizer
from yue_train.tokenizer.mm_tokenizer import MMTokenizer

if TYPE_CHECKING:
    from transformers import PretrainedConfig

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
    overwrite: bool = False  # replace the songs an earlier run wrote into ``out``
    n_songs: int = 1
    seed: int = 42
    stage2_batch_size: int = 16
    device: str = "auto"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    progress: bool = True
    allow_mismatch: bool = False  # a tokenizer other than the one the stage-1 model records: warn, not refuse


class GenerateInputError(ValueError):
    """Inputs generation cannot run on; raised before any model is loaded where possible."""


@dataclass
class CheckedInputs:
    tokenizer: MMTokenizer
    genres: str
    lyrics: str
    window: int  # the stage-1 model's context (its config's max_position_embeddings)
    continuation: SongCodes | None  # the song ``--continue-from`` names
    warnings: list[str] = field(default_factory=list)  # provenance warnings, printed before loading


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def check_model_ref(flag: str, ref: str) -> None:
    """A model or adapter is a local folder or a hub id (``org/name``); anything else is a missing folder."""
    path = Path(ref)
    if path.exists():
        if not path.is_dir():
            raise GenerateInputError(f"{flag} {ref}: not a folder (give a model folder or a hub id)")
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        raise GenerateInputError(f"{flag}: no such folder {ref}") from None


def _model_config(flag: str, ref: str) -> PretrainedConfig:
    from yue_train.models.loading import ModelSpec, load_model_config

    check_model_ref(flag, ref)
    try:
        return load_model_config(ModelSpec(path=ref))
    except (OSError, ValueError) as e:
        what = "cannot read its config" if Path(ref).is_dir() else "no such folder, nor a model on the hub"
        raise GenerateInputError(f"{flag} {ref}: {what} ({_first_line(e)})") from None


def check_models(
    tokenizer: MMTokenizer,
    stage1_model: str,
    stage2_model: str,
    flags: tuple[str, str] = ("--stage1-model", "--stage2-model"),
) -> int:
    """Both models' vocabularies against what the stages need, from their config files (no weights);
    returns the stage-1 model's context window (its ``max_position_embeddings``). ``flags`` name the
    models in messages."""
    s1 = _model_config(flags[0], stage1_model)
    s2 = _model_config(flags[1], stage2_model)
    for which, ref, config, needed in (
        ("stage-1", stage1_model, s1, tokenizer.vocab_size),
        ("stage-2", stage2_model, s2, STAGE2_MIN_VOCAB),
    ):
        if config.vocab_size < needed:
            raise GenerateInputError(
                f"{which} model {ref} has {config.vocab_size:,} ids; YuE's {which} needs at least {needed:,}"
            )
    return int(s1.max_position_embeddings)


def _check_adapter(ref: str) -> None:
    check_model_ref("--adapter", ref)
    if Path(ref).is_dir() and not (Path(ref) / "adapter_config.json").is_file():
        raise GenerateInputError(f"--adapter {ref}: not a LoRA adapter folder (no adapter_config.json)")
    from peft import PeftConfig

    try:
        PeftConfig.from_pretrained(ref)
    except (OSError, ValueError) as e:
        raise GenerateInputError(f"--adapter {ref}: cannot read its adapter config ({_first_line(e)})") from None


def check_inputs(opts: GenerateOptions) -> CheckedInputs:
    """Read and validate everything that needs no model weights."""
    try:
        check_out(Path(opts.out), opts.overwrite)
    except SongFolderError as e:
        raise GenerateInputError(str(e)) from None
    if opts.codec is not None and not (Path(opts.codec) / "yue_codec.json").is_file():
        raise GenerateInputError(f"--codec {opts.codec}: not a converted codec folder (run `yue-prep convert-codec`)")
    needs_codec = any(x is not None for x in (opts.ref_audio, opts.ref_vocal_audio, opts.ref_inst_audio))
    if needs_codec and opts.codec is None:
        raise GenerateInputError("an audio reference needs --codec to encode it (or pass --ref-codes)")
    genres = read_text_file(opts.genre_txt, "genre")
    lyrics = read_text_file(opts.lyrics_txt, "lyrics")
    tokenizer = load_tokenizer(opts.tokenizer)
    continuation = None
    if opts.continue_from is not None:
        try:
            continuation = read_song(Path(opts.continue_from))
        except SongFolderError as e:
            raise GenerateInputError(f"--continue-from {opts.continue_from}: {e}") from None
    # Model and adapter configs are small files: check them before loading any weights.
    window = check_models(tokenizer, opts.stage1_model, opts.stage2_model)
    for adapter in opts.adapters:
        _check_adapter(adapter)
    # The models' provenance records against their stages and the tokenizer.
    records = check_records(
        opts.stage1_model, opts.stage2_model, opts.adapters, opts.tokenizer, tokenizer, opts.allow_mismatch
    )
    if records.refusals:
        raise GenerateInputError(records.refusals[0])
    return CheckedInputs(tokenizer, genres, lyrics, window, continuation, records.warnings)
