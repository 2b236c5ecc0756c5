"""YuE's models: the released architectures as transformers configs, loading, attention and LoRA.

Training and inference both build models through :func:`yue_train.models.loading.build_model`, so the
architecture definitions cannot drift apart; every pretrained model, adapter and config comes in through
:mod:`.hub`. Nothing is imported here, so ``from yue_train.models import hub`` does not load transformers.
"""
