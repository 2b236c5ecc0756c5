"""``yue-infer``: stage-1 prompts, stage-1 and stage-2 generation, song folders (see :mod:`inference.cli`)."""
