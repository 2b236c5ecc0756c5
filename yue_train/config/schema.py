"""The typed schema of the training config: every key's type, default and a one-line doc, in one place.

Hydra composes ``conf/config.yaml`` on top of the schema's keys and defaults (stored in Hydra's ConfigStore
as ``yue_train_schema``, the first entry of the config's defaults list), so group files and recipes hold
only what differs from the defaults, and an override of a key the schema does not know fails while
composing. :func:`check_schema` then merges the composed config onto :class:`RootConfig`: keys added with
Hydra's ``+``/``++`` prefixes and values of the wrong type fail there. Each failure is one line naming the
full key and, for an unknown key, the closest valid one. ``???`` (missing) values and ``${...}``
interpolations are kept as they are and resolved when read.

``yue-train recipe=NAME --print-config`` prints the resolved config with each key's doc as a YAML comment
(:func:`format_config`).
"""

from __future__ import annotations

import copy
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from yue_train.format.roles import ROLE_NAMES

SCHEMA_NAME = "yue_train_schema"


class SchemaError(ValueError):
    """A config key the schema does not know, or a value of the wrong type; the message is one line."""


def doc(default: Any, text: str) -> Any:
    """A dataclass field with ``default`` (a dataclass type or a list/dict is copied per instance) and its doc."""
    meta = {"doc": text}
    if isinstance(default, type) and is_dataclass(default):
        return field(default_factory=default, metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# -------------------------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    """the model: a named architecture with random weights, or pretrained weights from path"""

    name: str | None = doc(None, "a named architecture (yue_train/models/architectures.py), random init")
    path: str | None = doc(None, "a local folder or hub id to load pretrained weights from (wins over name)")
    stage: int | None = doc(
        None, "1 (cot/icl shards) | 2 (stage2 shards) | null: as model.path's record or the architecture says"
    )
    dtype: str = doc("auto", "auto (bfloat16 on CUDA, float32 on CPU) | float32 | bfloat16 | float16")
    attn_implementation: str = doc("auto", "auto | sdpa | eager | flash_attention_2 | torch_varlen | flex_attention")
    load_in_4bit: bool = doc(False, "4-bit base weights for QLoRA (CUDA + bitsandbytes)")
    gradient_checkpointing: Any = doc(
        "auto", "auto (on a GPU: only when the estimated step would not fit without it; CPU: off) | true | false"
    )
    tokenizer: str | None = doc(
        MISSING, "synthetic (generated stand-in) | path to tokenizer.model | null (no tokenizer checks)"
    )  # no default: each model file says which tokenizer its ids come from
    overrides: dict[str, Any] | None = doc(None, "config fields of the named architecture to replace")


# --------------------------------------------------------------------------------------------- data
@dataclass
class DatasetConfig:
    """one dataset: shard folder(s) and its share of the mixture"""

    name: str | None = doc(None, "label in the plan and logs (default: the last part of path)")
    path: Any = doc(None, "shard folder, .tar file, brace-expanded URL pattern, or a list of these")
    weight: float | None = doc(None, "share of documents drawn, relative to the other datasets (null: 1)")
    rounds: float | None = doc(None, "passes over the dataset in this phase (instead of weight; sets the budget)")
    tokens: float | None = doc(None, "dataset size in tokens where no summary.json says it (URLs, one .tar)")
    docs: float | None = doc(None, "dataset size in documents where no summary.json says it")
    synthetic: dict[str, Any] | None = doc(
        None, "generate the dataset into path first: {kind, n_songs, seconds, seed, icl_prompt} (test fixtures)"
    )


@dataclass
class DemoCorpusConfig:
    """the generated demo corpus, written on first use"""

    enabled: bool = doc(True, "write the corpus before training")
    out: str = doc("${trainer.run_dir}/demo_corpus", "folder of the corpus")
    n_songs: int = doc(200, "number of generated songs")
    seconds: list[float] = doc([2.0, 4.0], "song lengths [low, high] in seconds (100 audio tokens per second)")
    stage: int = doc(1, "1: stage-1 CoT documents | 2: stage-2 documents")
    seed: int = doc(0, "generator seed")


@dataclass
class DataConfig:
    """token shards (yue-prep tokenize / build) packed into rows of seq_len tokens"""

    root: str | None = doc(None, "folder the dataset paths may start from: path: ${data.root}/cot_en")
    train: list[DatasetConfig] = doc(MISSING, "datasets to train on, e.g. [{path: /data/cot, weight: 3}]")
    eval: list[DatasetConfig] | None = doc(None, "held-out datasets; null: hold out eval_fraction of train")
    eval_fraction: float = doc(0.01, "share of train documents held out for eval (by document id)")
    seq_len: int = doc(8192, "tokens per packed row")
    batch_size: int = doc(1, "packed rows per micro-batch on one process")
    shuffle_buffer: int = doc(256, "documents in each dataset's shuffle buffer")
    overflow: str = doc("next_row", "next_row | split: a document that does not fit the row (yue_train.data.packing)")
    demo_corpus: DemoCorpusConfig | None = doc(None, "generated demo corpus; null: none")
    allow_commands: bool = doc(
        False, "allow dataset URLs that run a shell command (webdataset pipe:CMD); only for configs you trust"
    )
    max_bad_docs: int = doc(
        10, "damaged documents skipped (each logged with shard and key) before training saves and stops"
    )


# ------------------------------------------------------------------------------------ optim, lora
@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule"""

    lr: float = doc(1.0e-4, "peak learning rate")
    weight_decay: float = doc(0.01, "on matrices only; norms and biases get none")
    betas: list[float] = doc([0.9, 0.95], "AdamW betas")
    eps: float = doc(1.0e-8, "AdamW epsilon")
    schedule: str = doc("cosine", "cosine | linear | constant, after warmup")
    warmup_steps: int = doc(100, "linear warm-up from 0 over this many steps")
    min_lr_ratio: float = doc(0.1, "floor of cosine/linear decay, as a fraction of lr")
    max_grad_norm: float = doc(1.0, "gradient clipping norm; <= 0: no clipping (the norm is still reported)")


@dataclass
class LoraConfig:
    """LoRA adapters through PEFT"""

    enabled: bool = doc(False, "train LoRA adapters instead of every weight")
    r: int = doc(64, "adapter rank")
    alpha: float = doc(32, "scale: the update is multiplied by alpha / r")
    dropout: float = doc(0.05, "dropout on the adapter input")
    target_modules: list[str] = doc(["q_proj", "k_proj", "v_proj", "o_proj"], "projection modules that get adapters")


# ------------------------------------------------------------------------------------------ trainer
RoleWeights = make_dataclass(
    "RoleWeights", [(name, float, field(default=1.0)) for name in ROLE_NAMES.values()]
)  # one field per token role of yue_train/format/roles.py, in role order
RoleWeights.__doc__ = "loss weight per target-token role; 0 masks the loss (still reported), e.g. prompt_vocal: 0"


@dataclass
class LossConfig:
    """next-token cross-entropy: how logits are computed, and the per-role weights"""

    impl: str = doc(
        "auto",
        "auto | full | chunked | chunked_recompute | fused. auto, per step, from N label positions x V ids: fused "
        "(CUDA, liger-kernel installed, plain lm_head); else full when 3·N·V·4 bytes fit memory_budget_gib; "
        "else chunked (no recompute) when 2·chunk·V·4 + N·hidden·4 bytes (+4 per trainable lm_head weight) fit; "
        "else chunked_recompute (lm_head runs twice)",
    )
    memory_budget_gib: float = doc(1.0, "memory the loss may take for logits-sized tensors (impl=auto)")
    chunk_size: int = doc(1024, "positions per logits chunk (chunked, chunked_recompute)")
    role_weights: RoleWeights = doc(RoleWeights, RoleWeights.__doc__)  # type: ignore[valid-type]


@dataclass
class TrainerConfig:
    """the training loop: steps, batch, evaluation, checkpoints"""

    runs_root: str = doc("runs", "run folders live here; phases find each other by name under it")
    run_dir: str = doc("${trainer.runs_root}/${recipe_name}", "this run's folder: config, metrics, checkpoints")
    device: str = doc("auto", "auto | cpu | cuda | cuda:N")
    cpu_threads: int | None = doc(None, "torch intra-op threads on CPU; null: torch default")
    seed: int = doc(42, "seed of weights init, data order and dropout")
    max_steps: int = doc(1000, "optimizer steps (unless max_tokens or rounds set the budget)")
    max_tokens: float | None = doc(None, "token budget: max_steps = ceil(max_tokens / (global batch x seq_len))")
    global_batch_size: int | None = doc(
        None, "packed rows per optimizer step over all processes; grad_accum is then derived from it"
    )
    grad_accum: int = doc(1, "micro-batches per process per step (when global_batch_size is null)")
    init_from: str | None = doc(None, "start from weights: a previous run folder, a checkpoint or a HF model folder")
    log_every: int = doc(1, "steps between metric lines")
    eval_every: int = doc(200, "steps between evaluations; 0: only at the end")
    eval_max_batches: int = doc(16, "held-out batches per evaluation")
    save_every: int = doc(500, "steps between checkpoints; 0: only at the end (and on SIGTERM)")
    keep_last: int = doc(3, "checkpoints kept")
    hf_every: int = doc(
        0, "also write Hugging Face weights (model/ or adapter/) every N checkpoints; 0: only at the end of the phase"
    )
    async_save: bool = doc(False, "write checkpoints in a background thread while training goes on")
    resume: str = doc("auto", "auto: newest checkpoint of run_dir that verifies | none | a checkpoint folder")
    allow_config_change: Any = doc(
        False, "resume although these keys differ from the checkpoint's config (model, data, seed...): a list | true"
    )
    max_bad_steps: int = doc(10, "non-finite losses/gradients skipped before giving up")
    loss: LossConfig = doc(LossConfig, "next-token cross-entropy")


# ------------------------------------------------------------------------------ logging, distributed
@dataclass
class WandbConfig:
    """Weights & Biases"""

    enabled: bool = doc(True, "log to W&B")
    project: str = doc("yue-train", "W&B project")
    entity: str | None = doc(None, "W&B team or user; null: your default")
    mode: str = doc("offline", "offline (run_dir/wandb/offline-run-*) | online | disabled")
    name: str | None = doc("${recipe_name}", "W&B run name")
    tags: list[str] = doc([], "W&B run tags")


@dataclass
class LoggingConfig:
    """progress bar and W&B"""

    progress: bool = doc(True, "tqdm progress bar on rank 0")
    wandb: WandbConfig = doc(WandbConfig, "Weights & Biases")


@dataclass
class DistributedConfig:
    """data-parallel strategy (pick a group: distributed=single | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3)"""

    strategy: str = doc("single", "single | ddp | fsdp2 | deepspeed")
    find_unused_parameters: bool = doc(False, "ddp: allow parameters without gradient")
    cpu_offload: bool = doc(False, "fsdp2: sharded state in CPU memory; deepspeed: optimizer state on CPU")
    reshard_after_forward: bool = doc(True, "fsdp2: false keeps layers gathered until backward (more memory)")
    config_file: str | None = doc(None, "deepspeed: JSON config, relative to conf/deepspeed/ or absolute")
    zero_stage: int | None = doc(None, "deepspeed: ZeRO stage; null: as config_file says")


# --------------------------------------------------------------------------------------------- eval
@dataclass
class EvalGenerateConfig:
    """songs generated by the model under training and scored with music metrics (yue_train/evaluation)"""

    enabled: bool = doc(False, "generate and score songs during training (rank 0 generates; others wait)")
    prompts: str | None = doc(
        None, "prompt set JSONL, one {id, genres, lyrics, reference?} per line (reference: target-voice audio)"
    )
    every: int = doc(0, "steps between song evaluations; 0: only at the end of the run")
    n_songs: int | None = doc(
        None, "songs per evaluation, one per prompt in order (repeating them); null: one per prompt"
    )
    seconds: float = doc(30.0, "longest section in seconds (max new tokens per section = 100 x seconds)")
    max_sections: int | None = doc(None, "generate only the first N sections of each prompt's lyrics; null: all")
    seed: int = doc(42, "seed of the first song (the same at every evaluation, so steps compare)")
    metrics: list[str] | None = doc(
        None, "metric names (yue-eval --list-metrics); null: those that need no downloaded weights"
    )
    metric_options: dict[str, Any] = doc({}, "options per metric, e.g. {voice_similarity: {target: voice.wav}}")
    reference: str | None = doc(None, "folder of reference audio (your training songs) for set metrics such as fad")
    stage2_model: str | None = doc(None, "stage-2 model folder or hub id; null: stage 1 only, token metrics only")
    codec: str | None = doc(None, "converted codec folder (yue-prep convert-codec), with stage2_model: audio")


@dataclass
class EvalConfig:
    """evaluation beyond the held-out loss"""

    generate: EvalGenerateConfig = doc(EvalGenerateConfig, EvalGenerateConfig.__doc__)


# --------------------------------------------------------------------------------------------- root
@dataclass
class RootConfig:
    """yue-train config"""

    recipe_name: str = doc(MISSING, "run name: the run folder under trainer.runs_root and the W&B run")
    model: ModelConfig = doc(ModelConfig, ModelConfig.__doc__)
    data: DataConfig = doc(DataConfig, DataConfig.__doc__)
    optim: OptimConfig = doc(OptimConfig, OptimConfig.__doc__)
    lora: LoraConfig = doc(LoraConfig, LoraConfig.__doc__)
    trainer: TrainerConfig = doc(TrainerConfig, TrainerConfig.__doc__)
    logging: LoggingConfig = doc(LoggingConfig, LoggingConfig.__doc__)
    distributed: DistributedConfig = doc(DistributedConfig, DistributedConfig.__doc__)
    eval: EvalConfig = doc(EvalConfig, EvalConfig.__doc__)


# ------------------------------------------------------------------------------------------ checks
def register_schema() -> None:
    """Put :func:`_keys_only` of :class:`RootConfig` in Hydra's ConfigStore, where ``conf/config.yaml``'s
    defaults list finds it. Hydra then rejects unknown keys and fills defaults, while every type is checked
    by :func:`check_schema`, which can name a list entry (``data.train[2].weight``) where OmegaConf's own
    errors inside a list lose the list's key."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=_keys_only(RootConfig))


def check_schema(cfg: DictConfig) -> DictConfig:
    """``cfg`` merged onto :class:`RootConfig`: typed, with every default; unknown keys (also those added
    with ``+``) and values of the wrong type raise :class:`SchemaError` naming the key."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))  # interpolations and ??? kept
    for path, entry_type in _LIST_FIELDS:
        entries = OmegaConf.select(plain, path, throw_on_missing=False)
        for i, entry in enumerate(entries if OmegaConf.is_list(entries) else []):
            try:
                OmegaConf.merge(OmegaConf.structured(entry_type), entry)
            except OmegaConfBaseException as e:
                raise SchemaError(explain(e, prefix=f"{path}[{i}]", root=entry_type)) from None
    try:
        return typing.cast(DictConfig, OmegaConf.merge(OmegaConf.structured(RootConfig), plain))
    except OmegaConfBaseException as e:
        raise SchemaError(explain(e)) from None


@functools.cache
def _keys_only(cls: type) -> type:
    """``cls`` with the same fields and defaults, nested dataclasses kept and every other type ``Any``."""
    specs = []
    for f in fields(cls):
        tp = _unwrap(typing.get_type_hints(cls)[f.name])
        if is_dataclass(tp):
            loose = _keys_only(tp)
            optional = f.default is None
            specs.append(
                (
                    f.name,
                    loose | None if optional else loose,
                    field(default=None) if optional else field(default_factory=loose),
                )
            )
        else:
            specs.append((f.name, Any, field(default=f.default, default_factory=f.default_factory)))
    return make_dataclass(f"{cls.__name__}Keys", specs)


def explain(e: BaseException, prefix: str = "", root: type = RootConfig) -> str:
    """One line for an OmegaConf error (found in ``e`` or its causes) about a key of ``root``."""
    err = _omegaconf_cause(e)
    if err is None:
        return _one_line(e)
    parts = _split_key(str(err.full_key or err.key or ""))
    full = _join(_split_key(prefix) + parts)
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and parts:
        parent = _type_at(root, parts[:-1])
        names = [f.name for f in fields(parent)] if is_dataclass(parent) else []
        if names and parts[-1] not in names:
            above = _join(_split_key(prefix) + parts[:-1])
            close = difflib.get_close_matches(str(parts[-1]), names, n=1, cutoff=0.6)
            hint = (
                f"did you mean {_join([above, close[0]])}?"
                if close
                else f"{above or 'the root'} takes {', '.join(names)}"
            )
            return f"unknown config key {full} ({hint})"
    if isinstance(err, ValidationError) and parts:
        expected = _describe(_type_at(root, parts))
        if expected:
            return f"{full}: expected {expected}, got {_value_of(err)!r}"
    return _one_line(e)


def _one_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip() and "HYDRA_FULL_ERROR" not in x]
    return " ".join(lines) or type(e).__name__


def _omegaconf_cause(e: BaseException | None) -> OmegaConfBaseException | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OmegaConfBaseException):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _value_of(err: ValidationError) -> Any:
    value = getattr(err, "value", None)
    return value._value() if hasattr(value, "_value") else value


def _split_key(key: str) -> list[str | int]:
    """``data.train[0].path`` -> ``["data", "train", 0, "path"]``."""
    out: list[str | int] = []
    for part in key.replace("[", ".").replace("]", "").split("."):
        if part:
            out.append(int(part) if part.isdigit() else part)
    return out


def _join(parts: list[str | int]) -> str:
    """``["data", "train", 0, "path"]`` -> ``data.train[0].path``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}" if out and p else str(p)
    return out


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def _type_at(root: Any, parts: list[str | int]) -> Any:
    """The schema type at ``parts`` below ``root`` (``Any`` where the schema does not say)."""
    tp = root
    for part in parts:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(part, int) or origin is list:
            tp = typing.get_args(tp)[0] if origin is list and typing.get_args(tp) else Any
            if not isinstance(part, int):  # a list entry's key without its index (OmegaConf drops it)
                tp = _type_at(tp, [part])
            continue
        if is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            tp = hints.get(str(part), Any)
        elif origin is dict:
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        else:
            return Any
    return _unwrap(tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list or tp is list:
        return "a list"
    if origin is dict or tp is dict or is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, "")


def _list_fields(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """Every ``list[SomeDataclass]`` field below ``cls``: ``[("data.train", DatasetConfig), ...]``."""
    out = []
    for f in fields(cls):
        tp = _unwrap(typing.get_type_hints(cls)[f.name])
        args = typing.get_args(tp)
        if typing.get_origin(tp) is list and args and is_dataclass(args[0]):
            out.append((f"{prefix}{f.name}", args[0]))
        elif is_dataclass(tp):
            out += _list_fields(tp, f"{prefix}{f.name}.")
    return out


_LIST_FIELDS = _list_fields(RootConfig)


# ------------------------------------------------------------------------------------ --print-config
COMMENT_COLUMN = 44


def format_config(cfg: DictConfig) -> str:
    """The resolved ``cfg`` as YAML, each key's doc as a comment (``yue-train ... --print-config``)."""
    lines: list[tuple[str, str]] = []
    _emit(RootConfig, OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "", lines)
    out = []
    for text, comment in lines:
        if comment and text.strip():
            text = f"{text.ljust(COMMENT_COLUMN - 2)}  # {comment}"
        out.append(text)
    return "\n".join(out) + "\n"


def _emit(cls: Any, mapping: dict, indent: str, lines: list[tuple[str, str]], docs: bool = True) -> None:
    """Append ``(yaml line, doc)`` for each key of ``mapping`` (described by the dataclass ``cls``)."""
    info = {f.name: f for f in fields(cls)} if is_dataclass(cls) else {}
    hints = typing.get_type_hints(cls) if is_dataclass(cls) else {}
    first = indent.endswith("- ")  # a list entry: its first key carries the "- "
    for key, value in mapping.items():
        doc_text = info[key].metadata.get("doc", "") if docs and key in info else ""
        tp = _unwrap(hints.get(key, Any))
        head = f"{indent}{_flow(key)}:"
        if not first and indent.endswith("- "):
            head = f"{' ' * len(indent)}{_flow(key)}:"
        first = False
        child_indent = " " * (len(head) - len(head.lstrip()) + 2)
        args = typing.get_args(tp)
        if isinstance(value, dict) and value and is_dataclass(tp):
            lines.append((head, doc_text))
            _emit(tp, value, child_indent, lines, docs)
        elif isinstance(value, list) and value and typing.get_origin(tp) is list and args and is_dataclass(args[0]):
            lines.append((head, doc_text))
            for i, entry in enumerate(value):
                _emit(args[0], entry, f"{child_indent}- ", lines, docs and i == 0)  # entry docs once
        else:
            lines.append((f"{head} {_flow(value)}", doc_text))


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style for lists and mappings)."""
    return yaml.safe_dump([value], default_flow_style=True, width=float("inf"), sort_keys=False).strip()[1:-1]
