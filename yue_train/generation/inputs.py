"""``yue-infer generate``'s options, and the checks that need no model weights: files, folders, hub ids,
model and adapter configs, the output folder and the song to continue."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from yue_train.codec.folder import check_codec_folder
from yue_train.errors import first_line
from yue_train.format import codec_layout as cl
from yue_train.format.checkpoint_names import HF_ADAPTER_DIR, HF_MODEL_DIR, MODEL_CONFIG_DIR
from yue_train.format.files import SpecialFileError, check_regular_file
from yue_train.generation.prompts import read_text_file
from yue_train.generation.provenance import check_records
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.song_folder import SongCodes, SongFolderError, check_out, read_song
from yue_train.models import hub
from yue_train.models.hub import PretrainedRefused
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


def check_model_ref(flag: str, ref: str) -> None:
    """A model or adapter is a local folder or a hub id (``org/name``); anything else is a missing folder."""
    path = Path(ref)
    ckpt = path.parent if path.name in (HF_MODEL_DIR, HF_ADAPTER_DIR) else path
    hf = (path / "config.json").is_file() or (path / "adapter_config.json").is_file()
    if (ckpt / MODEL_CONFIG_DIR).is_dir() and not hf:  # the small config files every training checkpoint has
        raise GenerateInputError(
            f"{flag} {ref}: a training checkpoint without Hugging Face weights (only its sharded state); "
            f"run `yue-train export {ckpt} OUT` and give OUT"
        )
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
        if Path(ref).is_dir():
            hub.check_folder(ref, "files")  # pickle-only weights are refused before any output is written
        return load_model_config(ModelSpec(path=ref))
    except PretrainedRefused as e:
        raise GenerateInputError(f"{flag} {e}") from None
    except (OSError, ValueError) as e:
        what = "cannot read its config" if Path(ref).is_dir() else "no such folder, nor a model on the hub"
        raise GenerateInputError(f"{flag} {ref}: {what} ({first_line(e)})") from None


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


def _finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GenerateInputError(f"{name} is {value!r}: give a finite number")
    return float(value)


def check_reference_window(start: object, end: object, names: tuple[str, str] = ("--ref-start", "--ref-end")) -> None:
    """The reference window in seconds: finite, start >= 0, end after start."""
    lo, hi = _finite(names[0], start), _finite(names[1], end)
    if lo < 0:
        raise GenerateInputError(f"{names[0]} {lo:g} is negative: the reference window starts at 0 s or later")
    if hi <= lo:
        raise GenerateInputError(f"{names[1]} {hi:g} must be after {names[0]} {lo:g}")


def check_generation_numbers(
    sampling: SamplingConfig, n_songs: int, seed: int, n_sections: int | None, stage2_batch_size: int, dash: bool = True
) -> None:
    """Counts and sampling values generation uses, checked before anything loads (``dash``: name them as
    ``yue-infer generate`` flags, else as the Python API's arguments)."""

    def name(field_name: str) -> str:
        return f"--{field_name.replace('_', '-')}" if dash else field_name

    for f in fields(sampling):
        value = getattr(sampling, f.name)
        if isinstance(value, float):
            _finite(name(f.name), value)
    if sampling.repetition_penalty <= 0:
        raise GenerateInputError(f"{name('repetition_penalty')} must be > 0, got {sampling.repetition_penalty:g}")
    for field_name, value in (("n_songs", n_songs), ("stage2_batch_size", stage2_batch_size)):
        if value < 1:
            raise GenerateInputError(f"{name(field_name)} must be >= 1, got {value}")
    if n_sections is not None and n_sections < 1:
        raise GenerateInputError(f"{name('n_sections')} must be >= 1, got {n_sections}")
    if seed < 0:
        raise GenerateInputError(f"{name('seed')} must be >= 0, got {seed}")


MAX_ADAPTER_CONFIG_BYTES = 2**20  # a PEFT adapter_config.json is about 1 KB


def _read_adapter_config(flag: str, folder: Path) -> dict:
    path = folder / "adapter_config.json"
    try:
        check_regular_file(path, "adapter_config.json")
        if path.stat().st_size > MAX_ADAPTER_CONFIG_BYTES:
            raise GenerateInputError(f"{flag} {folder}: adapter_config.json is too large for an adapter config")
        data = json.loads(path.read_text(encoding="utf-8"))  # NaN is parsed: the LoRA check names the key
    except FileNotFoundError:
        raise GenerateInputError(f"{flag} {folder}: not a LoRA adapter folder (no adapter_config.json)") from None
    except SpecialFileError as e:
        raise GenerateInputError(f"{flag} {folder}: {e}") from None
    except (OSError, ValueError) as e:  # a special file, unreadable, not UTF-8, not JSON
        raise GenerateInputError(f"{flag} {folder}: cannot read adapter_config.json ({first_line(e)})") from None
    except RecursionError:  # nesting deeper than the parser recurses (the file is at most 1 MB)
        raise GenerateInputError(f"{flag} {folder}: adapter_config.json is nested too deeply") from None
    if not isinstance(data, dict):
        raise GenerateInputError(
            f"{flag} {folder}: adapter_config.json holds a JSON {type(data).__name__}, not an object"
        )
    if not (folder / "adapter_model.safetensors").is_file():
        found = (
            " (a pickle adapter_model.bin is not loaded: it could run code)"
            if (folder / "adapter_model.bin").exists()
            else ""
        )
        raise GenerateInputError(f"{flag} {folder}: no adapter_model.safetensors{found}")
    return data


def check_adapter_config(flag: str, ref: str, config: dict, module_names: set[str] | None = None) -> None:
    """A LoRA config yue-infer can load: its type, rank, alpha and target modules (present in the stage-1
    model when ``module_names`` are given)."""
    where = f"{flag} {ref}: adapter_config.json"
    if config.get("peft_type") != "LORA":
        raise GenerateInputError(f"{where} has peft_type {config.get('peft_type')!r}; a LoRA adapter has 'LORA'")
    r = config.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise GenerateInputError(f"{where} has rank r={r!r}; a LoRA rank is a positive integer")
    alpha = config.get("lora_alpha", 8)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise GenerateInputError(f"{where} has lora_alpha={alpha!r}; give a finite number")
    targets = config.get("target_modules")
    if isinstance(targets, str) and targets.strip():  # PEFT's regex or "all-linear" form: matched at load
        return
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise GenerateInputError(f"{where} has target_modules={targets!r}; list the module names LoRA adapts")
    missing = sorted(set(targets) - module_names) if module_names else []
    if missing:
        raise GenerateInputError(f"{where} targets {', '.join(missing)}, which the stage-1 model does not have")


def check_adapter(ref: str, flag: str = "--adapter", module_names: set[str] | None = None) -> None:
    """An adapter folder or hub id whose config is a loadable LoRA config; reads no weights."""
    check_model_ref(flag, ref)
    if Path(ref).is_dir():
        config = _read_adapter_config(flag, Path(ref))
    else:
        try:
            config = hub.adapter_config(ref).to_dict()
        except PretrainedRefused as e:
            raise GenerateInputError(f"{flag} {e}") from None
        except Exception as e:  # PEFT raises many types for an unreadable config
            raise GenerateInputError(f"{flag} {ref}: cannot read its adapter config ({first_line(e)})") from None
        config["peft_type"] = str(getattr(config.get("peft_type"), "value", config.get("peft_type")))
    check_adapter_config(flag, ref, config, module_names)
    try:
        hub.check_source(ref, "adapter")
    except PretrainedRefused as e:
        raise GenerateInputError(f"{flag} {e}") from None


def stage1_module_names(stage1_model: str, flag: str = "--stage1-model") -> set[str]:
    """Leaf module names of the stage-1 model, from its config (a weightless build)."""
    from yue_train.models.loading import llama_module_names

    return llama_module_names(_model_config(flag, stage1_model))


def check_inputs(opts: GenerateOptions) -> CheckedInputs:
    """Read and validate everything that needs no model weights."""
    check_reference_window(opts.ref_start, opts.ref_end)
    check_generation_numbers(opts.sampling, opts.n_songs, opts.seed, opts.n_sections, opts.stage2_batch_size)
    try:
        check_out(Path(opts.out), opts.overwrite)
    except SongFolderError as e:
        raise GenerateInputError(str(e)) from None
    if opts.codec is not None:
        check_codec_folder(opts.codec, "--codec", GenerateInputError)
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
    names = stage1_module_names(opts.stage1_model) if opts.adapters else None
    for adapter in opts.adapters:
        check_adapter(adapter, module_names=names)
    # The models' provenance records against their stages and the tokenizer.
    records = check_records(
        opts.stage1_model, opts.stage2_model, opts.adapters, opts.tokenizer, tokenizer, opts.allow_mismatch
    )
    if records.refusals:
        raise GenerateInputError(records.refusals[0])
    return CheckedInputs(tokenizer, genres, lyrics, window, continuation, records.warnings)
