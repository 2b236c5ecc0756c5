"""Model definitions for YuE: the released architectures as transformers configs, and loading.

Training and inference both build models through :func:`yue_train.models.loading.load_model`, so the
architecture definitions cannot drift apart.
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
