"""yue-train: training, fine-tuning, data preparation and inference for YuE.

The data path, by module:
  manifest records (yue_train.data.manifest) -> documents (yue_train.format.sequences)
  -> webdataset shards (yue_train.data.shards) -> packed batches -> model -> loss.
"""

__version__ = "0.1.0"
