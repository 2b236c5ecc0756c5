"""Training core: packed document streaming, chunked loss, LoRA, the training loop, evaluation, export.

Entry point: ``yue-train`` (:func:`yue_train.cli.train.main`).
"""
