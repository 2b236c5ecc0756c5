"""The YuE token format: vocabulary ids, codec layout, per-token roles and sequence builders.

Every document written for training and every prompt built for generation comes from this package, so
data preparation, training and inference cannot drift apart. ``docs/token-format.md`` describes the format.
"""
