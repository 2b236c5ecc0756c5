"""``yue-infer``: generation-side tools (stage-1 prompts now; generation, decoding and adapters later)."""
