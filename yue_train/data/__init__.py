"""Data: official manifests -> validated song records -> token shards -> (training) packed batches."""
