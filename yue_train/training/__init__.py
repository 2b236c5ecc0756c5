"""The training engine: the loop, forward pass, chunked loss, data-parallel strategies, checkpoints, logging,
the phase plan and the config checks.

Entry point: ``yue-train`` (:func:`yue_train.cli.train.main`).
"""
