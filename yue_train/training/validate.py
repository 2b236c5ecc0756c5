"""Config checks that run before any model is built or data streamed: one clear line per problem.

They only read. :func:`check_config` needs no data; :func:`check_data` opens the datasets, so generated
ones must be written first (:func:`yue_train.data.generated.prepare_data`, between the two).
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from transformers import PretrainedConfig

from yue_train.data.packing import DataConfigError, resolve_urls
from yue_train.data.pretrain_corpus import synthetic_entries
from yue_train.data.shard_reader import iter_records, url_kind
from yue_train.data.train_data import refuse_urls
from yue_train.errors import first_line
from yue_train.format.document import Document
from yue_train.format.provenance import provenance_for
from yue_train.models.loading import ModelSpec, llama_module_names, load_model_config
from yue_train.training.loss import LossSettings
from yue_train.training.plan import entry_name
from yue_train.training.provenance import dataset_problem, dataset_records, model_stage, model_tokenizer


class ConfigError(ValueError):
    """A configuration that cannot train; the message is one line saying what to change."""


def check_config(cfg: Any) -> PretrainedConfig:
    """Check what needs no data (configs, a weightless meta-device model) and return the model config."""
    if OmegaConf.is_missing(cfg.model, "tokenizer"):  # the released models' configs leave it to the user
        raise ConfigError(
            f"model.tokenizer: {cfg.model.name} needs the YuE tokenizer.model it was trained with: "
            "pass model.tokenizer=/path/to/tokenizer.model"
        )
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        hint = " (e.g. data.train='[{path: /data/shards, weight: 1}]')" if "data.train" in missing else ""
        raise ConfigError(f"missing value for {', '.join(missing)}{hint}")
    spec = ModelSpec.from_cfg(cfg.model)
    try:
        model_config = load_model_config(spec)
    except (ValueError, OSError) as e:
        raise ConfigError(f"model: cannot read the config of {spec.describe()}: {first_line(e)}") from None

    seq_len, max_pos = cfg.data.seq_len, int(model_config.max_position_embeddings)
    if seq_len > max_pos:
        raise ConfigError(f"data.seq_len={seq_len} exceeds the model's {max_pos} positions ({spec.describe()})")
    if seq_len < 2:
        raise ConfigError(f"data.seq_len={seq_len} is too short to train on")

    _, problem = model_stage(cfg.model)
    if problem:
        raise ConfigError(problem)
    tok = cfg.model.tokenizer
    if tok:
        from yue_train.tokenizer import load_tokenizer

        try:
            tokenizer = load_tokenizer(None if tok == "synthetic" else tok)
        except (OSError, ValueError) as e:
            raise ConfigError(f"model.tokenizer: {first_line(e)}") from None
        if tokenizer.vocab_size > model_config.vocab_size:
            raise ConfigError(
                f"tokenizer/model vocabulary mismatch: the tokenizer has {tokenizer.vocab_size} ids but the model "
                f"{spec.describe()} has {model_config.vocab_size} embedding rows"
            )

    if cfg.lora.enabled:
        names = llama_module_names(model_config)
        missing = [t for t in cfg.lora.target_modules if t not in names]
        if missing:
            linear = sorted(n for n in names if n.endswith("_proj") or n == "lm_head")
            raise ConfigError(
                f"lora.target_modules: {', '.join(missing)} not in the model; its projection modules are {', '.join(linear)}"
            )

    if cfg.data.max_bad_docs < 0:
        raise ConfigError(f"data.max_bad_docs must be >= 0, got {cfg.data.max_bad_docs}")
    for key in ("max_steps", "grad_accum"):
        if cfg.trainer[key] < 1:
            raise ConfigError(f"trainer.{key} must be >= 1, got {cfg.trainer[key]}")

    try:
        LossSettings.from_config(cfg.trainer.loss)
    except ValueError as e:
        raise ConfigError(first_line(e)) from None

    if not cfg.data.train:
        raise ConfigError("data.train is empty: list at least one dataset ({path: ..., weight: ...})")
    try:
        synthetic_entries(cfg)  # data.train entries with a `synthetic:` block (tiny pre-training chain)
    except ValueError as e:
        raise ConfigError(first_line(e)) from None
    return model_config


def check_data(cfg: Any, model_config: PretrainedConfig) -> None:
    """Check that every dataset path resolves, its first document fits the model's vocabulary, and what
    its folder records (stage, tokenizer, largest id) fits the model (one without a record is judged by
    its first document's mode). Command URLs need ``data.allow_commands``; a folder whose shards do not
    match its summary, or whose summary records no checksums, is refused."""
    stage, _ = model_stage(cfg.model)
    tokenizer = model_tokenizer(cfg.model)
    for group in ("train", "eval"):
        for i, ds in enumerate(cfg.data[group] or []):
            try:
                urls = resolve_urls(ds.path, bool(cfg.data.allow_commands))
                if group == "train":
                    refuse_urls(urls)
            except DataConfigError as e:
                raise ConfigError(f"data.{group}[{i}].path: {e}") from None
            where = f"data.{group}[{i}]"
            first_mode = _check_first_document(urls, where, model_config.vocab_size)
            records = dataset_records(ds.path) or ([("", provenance_for([first_mode]))] if first_mode else [])
            for item, prov in records:
                label = f"{where} ({item if item and not isinstance(ds.path, str) else entry_name(ds)})"
                desc = ModelSpec.from_cfg(cfg.model).describe()
                problem = dataset_problem(label, prov, stage, desc, tokenizer, model_config.vocab_size)
                if problem:
                    raise ConfigError(problem)


def _check_first_document(urls: list[str], where: str, vocab_size: int) -> str | None:
    """Peek at the first good document of a local dataset: catches shards tokenized for another vocabulary
    before the model is built (every document is checked again while streaming; bad ones are counted
    there). Returns its mode."""
    if not urls or url_kind(urls[0]) != "local":
        return None
    doc = next((d for d in iter_records([urls[0]]) if isinstance(d, Document)), None)
    if doc is not None and len(doc) and int(doc.input_ids.max()) >= vocab_size:
        raise ConfigError(
            f"{where}: document {doc.id!r} has token id {int(doc.input_ids.max())} but the model has {vocab_size} "
            "embedding rows (data tokenized for another vocabulary)"
        )
    return doc.mode if doc is not None else None
