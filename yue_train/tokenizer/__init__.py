"""The YuE "mm tokenizer v0.2": the real SentencePiece model, or a generated stand-in with the same id layout."""

from yue_train.tokenizer.mm_tokenizer import MMTokenizer, load_tokenizer
from yue_train.tokenizer.synthetic import STAND_IN_WARNING, build_synthetic_tokenizer, synthetic_tokenizer_path

__all__ = ["STAND_IN_WARNING", "MMTokenizer", "build_synthetic_tokenizer", "load_tokenizer", "synthetic_tokenizer_path"]
