"""``yue-prep``: data preparation (manifests -> token shards, shard inspection, synthetic corpora)."""
