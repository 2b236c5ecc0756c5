"""The names of a checkpoint's folders that code outside training reads.

Generation recognises a training checkpoint by its ``model_config/`` folder and finds its whole Hugging Face
weights in ``model/`` (full fine-tuning) or ``adapter/`` (LoRA). Training writes them
(:mod:`yue_train.training.checkpointing.layout`, which draws the whole tree and takes these names from
here). They live in this lowest layer so that both sides import one definition.
"""

from __future__ import annotations

MODEL_CONFIG_DIR = "model_config"  # config.json (+ generation_config.json), or adapter_config.json (LoRA)
HF_MODEL_DIR = "model"  # whole Hugging Face weights of a full fine-tune
HF_ADAPTER_DIR = "adapter"  # whole Hugging Face weights of a LoRA adapter
