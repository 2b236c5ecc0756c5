"""YuE's models: the released architectures as transformers configs, loading, LoRA and export.

Training and inference both build models through :func:`yue_train.models.loading.build_model`, so the
architecture definitions cannot drift apart; ``lora`` wraps a model with PEFT adapters and ``export``
merges an adapter into its base as a plain Hugging Face checkpoint.
"""

from yue_train.models.architectures import ARCHITECTURES, architecture_config
from yue_train.models.loading import ModelSpec, build_model, llama_module_names, load_model_config

__all__ = [
    "ARCHITECTURES",
    "ModelSpec",
    "architecture_config",
    "build_model",
    "llama_module_names",
    "load_model_config",
]
