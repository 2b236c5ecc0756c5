"""The one door through which every pretrained model, adapter, config and processor is loaded (a test walks
the package and fails on any ``from_pretrained`` or ``load_adapter`` call outside this module).

What the door does before transformers or PEFT sees a folder, each refusal one :class:`PretrainedRefused`
line naming the folder:
  * no custom code: ``trust_remote_code=False`` is passed, and a folder whose JSON configs carry an
    ``auto_map``, an unknown ``model_type``, or an adapter that names a module to import (PEFT's
    ``auto_mapping`` outside transformers, ``megatron_config``) is refused, so transformers never asks
    "Do you wish to run the custom code?";
  * safetensors only: a folder whose weights are only pickle files (``.bin``, ``.pt``, ...) is refused and
    the message names ``yue-train convert-weights``, which converts them when the user chooses to;
  * sizes bounded: every size in a config is checked against :data:`LIMITS`, and a model's parameters (a
    lower bound computed from its config) against the bytes its weight files hold, before anything is
    allocated; a LoRA rank against :data:`MAX_LORA_RANK` and the base's width, its alpha finite and at
    most :data:`MAX_LORA_ALPHA`.
A hub id is checked through its config files alone (fetched, or from the cache offline); its weights are
loaded with ``use_safetensors=True``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from yue_train.errors import first_line
from yue_train.format.bounded_json import JsonFileError, loads, read_json_object

MAX_CONFIG_BYTES = 4 << 20
# The largest value each config size may take (YuE-7B: hidden 4096, 32 layers, vocab 83,734, intermediate 11,008).
LIMITS = {
    "hidden_size": 1 << 16,
    "d_model": 1 << 16,
    "num_hidden_layers": 1024,
    "encoder_layers": 1024,
    "decoder_layers": 1024,
    "vocab_size": 1 << 22,
    "intermediate_size": 1 << 19,
    "encoder_ffn_dim": 1 << 19,
    "decoder_ffn_dim": 1 << 19,
    "num_attention_heads": 1024,
    "num_key_value_heads": 1024,
    "head_dim": 1 << 14,
    "max_position_embeddings": 1 << 22,
}
MAX_PARAMETERS = 200_000_000_000  # no model a config here may describe holds more
MIN_BYTES_PER_PARAMETER = 0.5  # 4-bit weights: the fewest bytes a stored parameter takes
MAX_LORA_RANK = 4096
MAX_LORA_ALPHA = 1e6
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONFIG_FILES = (
    "config.json",
    "adapter_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer_config.json",
    "generation_config.json",
)


class PretrainedRefused(ValueError):
    """A model, adapter or config folder the door does not load: one line naming it."""


def _known_model_types() -> frozenset[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return frozenset(CONFIG_MAPPING_NAMES)


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_json_object(path, max_bytes=MAX_CONFIG_BYTES)
    except JsonFileError as e:
        raise PretrainedRefused(str(e)) from None


def _is_size(value: Any, limit: int) -> bool:
    """An int in 0..limit, or a short list of them (per-stage sizes, e.g. CLAP's audio encoder heads)."""
    if isinstance(value, list):
        return len(value) <= 64 and all(_is_size(v, limit) for v in value if not isinstance(v, list))
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _check_sizes(config: dict[str, Any], where: str) -> None:
    """Every size named in :data:`LIMITS`, in ``config`` and its sub-configs, a non-negative int within its limit."""
    stack = [config]
    while stack:
        item = stack.pop()
        for key, value in item.items():
            if isinstance(value, dict):
                stack.append(value)
            elif key in LIMITS and value is not None and not _is_size(value, LIMITS[key]):
                raise PretrainedRefused(f"{where}: {key}={value!r} is outside 0..{LIMITS[key]:,}")


def parameter_lower_bound(config: dict[str, Any]) -> int:
    """Fewest parameters a decoder config describes: the embedding and each layer's two MLP matrices (the
    attention, norms and a separate output layer only add to it)."""
    hidden = int(config.get("hidden_size") or 0)
    layers = int(config.get("num_hidden_layers") or 0)
    vocab = int(config.get("vocab_size") or 0)
    inner = int(config.get("intermediate_size") or 0)
    return vocab * hidden + layers * 2 * hidden * inner


def check_model_config(config: dict[str, Any], where: str) -> None:
    """A model config transformers builds with its own code and whose sizes are within :data:`LIMITS`."""
    if "auto_map" in config:
        raise PretrainedRefused(f"{where}: names custom code (auto_map); yue-train loads only transformers' own models")
    known = _known_model_types()
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in known:
        raise PretrainedRefused(
            f"{where}: model_type {model_type!r} is not one transformers knows; yue-train runs no custom model code"
        )
    for key, value in config.items():  # sub-configs (text_config, audio_config, ...) name their own types
        if isinstance(value, dict) and "model_type" in value and value["model_type"] not in known:
            raise PretrainedRefused(f"{where}: {key}.model_type {value['model_type']!r} is not one transformers knows")
    _check_sizes(config, where)
    params = parameter_lower_bound(config)
    if params > MAX_PARAMETERS:
        raise PretrainedRefused(f"{where}: describes at least {params:,} parameters, more than {MAX_PARAMETERS:,}")


def check_adapter_config(config: dict[str, Any], where: str, base_width: int | None = None) -> None:
    """A LoRA config that imports nothing and whose rank and alpha are bounded (rank by ``base_width`` too)."""
    mapping = config.get("auto_mapping")
    if mapping is not None:
        library = mapping.get("parent_library") if isinstance(mapping, dict) else mapping
        if not isinstance(library, str) or not library.startswith("transformers."):
            raise PretrainedRefused(f"{where}: auto_mapping names module {library!r} to import; yue-train imports none")
    if config.get("megatron_config") is not None:
        raise PretrainedRefused(f"{where}: megatron_config makes PEFT import a module; yue-train loads plain LoRA")
    if "auto_map" in config:
        raise PretrainedRefused(f"{where}: names custom code (auto_map); yue-train loads only PEFT's own adapters")
    ranks = [("r", config.get("r", 8))] + [
        (f"rank_pattern[{k!r}]", v) for k, v in (config.get("rank_pattern") or {}).items()
    ]
    limit = min(MAX_LORA_RANK, base_width) if base_width else MAX_LORA_RANK
    for name, r in ranks:
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= limit:
            raise PretrainedRefused(f"{where}: LoRA {name}={r!r}; a rank is an integer from 1 to {limit:,}")
    alphas = [("lora_alpha", config.get("lora_alpha", 8))] + [
        (f"alpha_pattern[{k!r}]", v) for k, v in (config.get("alpha_pattern") or {}).items()
    ]
    for name, alpha in alphas:
        ok = isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
        if not ok or not math.isfinite(alpha) or abs(alpha) > MAX_LORA_ALPHA:
            raise PretrainedRefused(f"{where}: {name}={alpha!r}; give a finite number of at most {MAX_LORA_ALPHA:g}")


def _weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    files = [p for p in folder.iterdir() if p.is_file()]
    return [p for p in files if p.suffix == ".safetensors"], [p for p in files if p.suffix in PICKLE_SUFFIXES]


SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_SAFETENSORS_HEADER = 100 << 20


def check_safetensors(path: Path) -> None:
    """The header of a ``.safetensors`` file agrees with the file: its length fits, it is bounded JSON, and
    every tensor's byte range lies inside the data and matches its dtype and shape (a lying header would
    make the loader read or allocate what the header claims)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= min(MAX_SAFETENSORS_HEADER, size - 8):
            raise PretrainedRefused(f"{path}: not a safetensors file (its header length {n} does not fit the file)")
        try:
            header = loads(f.read(n), str(path))
        except JsonFileError as e:
            raise PretrainedRefused(str(e)) from None
    if not isinstance(header, dict):
        raise PretrainedRefused(f"{path}: its safetensors header is not an object")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(info, dict) and info.get("dtype") in SAFETENSORS_DTYPE_BYTES
        shape, offsets = (info.get("shape"), info.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(_is_size(d, 1 << 40) for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(_is_size(o, data) for o in offsets)
        if not ok or math.prod(shape) * SAFETENSORS_DTYPE_BYTES[info["dtype"]] != offsets[1] - offsets[0]:
            raise PretrainedRefused(f"{path}: the header's entry {name[:80]!r} does not match the file (damaged?)")


def check_weight_bytes(config: dict[str, Any], weight_bytes: int, where: str) -> None:
    """``config``'s parameters fit ``weight_bytes`` of stored weights (checked before a model is allocated)."""
    params = parameter_lower_bound(config)
    if params * MIN_BYTES_PER_PARAMETER > weight_bytes:
        raise PretrainedRefused(
            f"{where}: the config describes at least {params:,} parameters but the weights hold {weight_bytes:,} "
            "bytes; config and weights do not belong together"
        )


def check_folder(folder: str | Path, kind: str = "model") -> None:
    """Every check of the module on a local ``folder``; ``kind`` is ``model`` (weights loaded), ``files``
    (its config files, and weights that are not pickle only: the cheap check before a model is loaded),
    ``config`` (its config files only: a config or a processor) or ``adapter`` (a PEFT adapter)."""
    folder = Path(folder)
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        config = _read(path)
        if name == "adapter_config.json":
            check_adapter_config(config, str(path))
        elif name == "config.json":
            check_model_config(config, str(path))
        elif "auto_map" in config:
            raise PretrainedRefused(f"{path}: names custom code (auto_map); yue-train runs no custom code")
    wanted = "adapter_config.json" if kind == "adapter" else "config.json"
    if not (folder / wanted).is_file():
        raise PretrainedRefused(
            f"{folder}: no {wanted} (not a {'LoRA adapter' if kind == 'adapter' else 'model'} folder)"
        )
    if kind == "config":
        return
    safetensors, pickles = _weight_files(folder)
    for path in safetensors if kind != "files" else []:  # "files": the cheap check, before weights load
        check_safetensors(path)
    if pickles and not safetensors:
        raise PretrainedRefused(
            f"{folder}: weights only as pickle ({pickles[0].name}), which can run code; convert them with "
            f"`yue-train convert-weights {folder} OUT` and load OUT"
        )
    if kind == "model":
        check_weight_bytes(_read(folder / "config.json"), sum(p.stat().st_size for p in safetensors), str(folder))


def _hub_folder(ref: str, kind: str, kwargs: dict[str, Any]) -> Path:
    """The folder holding a hub id's JSON config files (fetched, or found in the cache offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                ref, allow_patterns=list(CONFIG_FILES), local_files_only=bool(kwargs.get("local_files_only"))
            )
        )
    except Exception as e:  # huggingface_hub raises many types for a missing or unreachable repo
        raise OSError(f"{ref}: cannot fetch its config files ({first_line(e)})") from None


def check_source(ref: str | Path, kind: str = "model", **kwargs: Any) -> None:
    """:func:`check_folder` on a local folder; a hub id's config files only (weights load as safetensors)."""
    if Path(ref).is_dir():
        check_folder(ref, kind)
    else:
        check_folder(_hub_folder(str(ref), kind, kwargs), "adapter" if kind == "adapter" else "config")


def from_pretrained(cls: Any, ref: str | Path, kind: str = "model", **kwargs: Any) -> Any:
    """``cls.from_pretrained(ref, **kwargs)`` of a transformers class (a model, ``AutoConfig``, a processor)
    after :func:`check_source`, without custom code and, for weights, from safetensors only."""
    if kwargs.pop("trust_remote_code", False):
        raise PretrainedRefused(f"{ref}: custom code is never run (trust_remote_code=True asked)")
    check_source(ref, kind, **kwargs)
    if kind == "model":
        kwargs["use_safetensors"] = True
    return cls.from_pretrained(ref, trust_remote_code=False, **kwargs)


def load_model(ref: str | Path, **kwargs: Any) -> Any:
    """A causal LM's weights from ``ref`` (``AutoModelForCausalLM``), through the door."""
    from transformers import AutoModelForCausalLM

    return from_pretrained(AutoModelForCausalLM, ref, "model", **kwargs)


def load_config(ref: str | Path, **kwargs: Any) -> Any:
    """A model's config (``AutoConfig``) without its weights, through the door."""
    from transformers import AutoConfig

    return from_pretrained(AutoConfig, ref, "config", **kwargs)


def base_width(model_or_config: Any) -> int | None:
    """``hidden_size`` of a model or its config (the largest useful LoRA rank on it), None when unknown."""
    config = getattr(model_or_config, "config", model_or_config)
    width = getattr(config, "hidden_size", None)
    return int(width) if isinstance(width, int) else None


def adapter_config(ref: str | Path, width: int | None = None) -> Any:
    """A PEFT adapter's config (``PeftConfig``), its rank checked against the base's ``width`` when given."""
    from peft import PeftConfig

    check_source(ref, "adapter")
    config = PeftConfig.from_pretrained(str(ref))
    check_adapter_config(config.to_dict(), f"{ref}/adapter_config.json", width)
    return config


def load_adapter(model: Any, ref: str | Path, **kwargs: Any) -> Any:
    """``PeftModel.from_pretrained(model, ref)``: the adapter on ``model``, through the door."""
    from peft import PeftModel

    config = adapter_config(ref, base_width(model))
    return PeftModel.from_pretrained(model, str(ref), config=config, **kwargs)


def add_adapter(peft_model: Any, ref: str | Path, adapter_name: str) -> None:
    """One more adapter on a ``PeftModel`` (``load_adapter``), through the door."""
    adapter_config(ref, base_width(peft_model.get_base_model()))
    peft_model.load_adapter(str(ref), adapter_name=adapter_name)


def peft_model(model: Any, config: Any, where: str) -> Any:
    """``get_peft_model`` with ``config`` (read through :func:`adapter_config`), its rank checked against ``model``."""
    from peft import get_peft_model

    check_adapter_config(config.to_dict(), where, base_width(model))
    return get_peft_model(model, config)


def model_from_config(config: Any, weight_bytes: int | None, where: str, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_config`` after the config's sizes, and its parameters against the
    ``weight_bytes`` that will be loaded into it (None: random weights, limits only), are checked."""
    from transformers import AutoModelForCausalLM

    values = config.to_dict()
    check_model_config(values, where)
    if weight_bytes is not None:
        check_weight_bytes(values, weight_bytes, where)
    return AutoModelForCausalLM.from_config(config, **kwargs)
