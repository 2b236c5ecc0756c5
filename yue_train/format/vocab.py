"""Fixed ids of the YuE "mm tokenizer v0.2" vocabulary.

These are facts of the released checkpoints; the tokenizer wrapper checks the model file against them.
"""

from __future__ import annotations

N_SENTENCEPIECE_PIECES = 83_734  # pieces in tokenizer.model
TEXT_VOCAB_END = 32_000  # ids below this are LLaMA text pieces
MODEL_VOCAB_SIZE = 83_968  # embedding rows of the released 7B and 1B models

SPECIAL_PIECES: dict[str, int] = {
    "<EOD>": 32000,
    "<SOA>": 32001,
    "<EOA>": 32002,
    "<SOI>": 32003,
    "<EOI>": 32004,
    "<SOV>": 32005,
    "<EOV>": 32006,
    "<s_local>": 32007,
    "<e_local>": 32008,
    "<s_global>": 32009,
    "<e_global>": 32010,
    "<semantic>": 32011,
    "<acoustic>": 32012,
    "<stage_1>": 32013,
    "<dac_16k>": 32014,
    "<dac_44k>": 32015,
    "<xcodec>": 32016,
    "<stage_2>": 32017,
    "<semantic_mert>": 32018,
    "<semantic_hubert>": 32019,
    "<visual>": 32020,
    "<semanticodec>": 32021,
}

EOD = SPECIAL_PIECES["<EOD>"]
SOA = SPECIAL_PIECES["<SOA>"]
EOA = SPECIAL_PIECES["<EOA>"]
XCODEC = SPECIAL_PIECES["<xcodec>"]
STAGE_1 = SPECIAL_PIECES["<stage_1>"]
STAGE_2 = SPECIAL_PIECES["<stage_2>"]
BOS = 1
EOS = 2

# The official wrapper registers these after the model's pieces, in this order (pad last: 83,737).
EXTRA_PIECES = ("<CLS>", "<SEP>", "<MASK>", "<PAD>")
PAD = N_SENTENCEPIECE_PIECES + 3

# Literal pieces the official wrapper splits text on, in its registration order. The order matters when
# two pieces start at the same character ("<s_local>" wins over "<s>"), as it does there.
SPLIT_PIECES = (
    "<CLS>", "<SEP>", "<EOD>", "<MASK>", "<SOA>", "<EOA>", "<SOV>", "<EOV>", "<SOI>", "<EOI>",
    "<s_local>", "<e_local>", "<s_global>", "<e_global>", "<stage_1>", "<stage_2>",
    "<PAD>", "<s>", "</s>",
)  # fmt: skip

# Generation may sample only ids >= this (the released inference blocks 0..32001).
MIN_SAMPLED_ID = EOA
