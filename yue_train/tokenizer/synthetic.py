"""A generated stand-in for YuE's tokenizer.model with the real id layout.

Tests and the demo run on fresh machines with no download, so they cannot use the real 1.7 MB model.
This builds a SentencePiece BPE model proto directly (no training, so it is deterministic and takes a
fraction of a second) with: <unk> <s> </s> at 0-2, the 256 byte-fallback pieces at 3-258 (newline = 13
as in LLaMA), a small English text vocabulary below 32,000, the 22 special pieces at their real ids
(32,000-32,021) and reserved multimodal pieces up to 83,733. Text ids differ from the real model's;
every id that the token format fixes is the same.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as pb

from yue_train.format import vocab

SYNTHETIC_VERSION = "v1"
# The one line every command prints when it falls back to this tokenizer (no --tokenizer given).
STAND_IN_WARNING = (
    "warning: no --tokenizer: text is tokenized with the generated stand-in (same id layout, not YuE's text ids; "
    "for tests and demos, not real YuE models); pass --tokenizer tokenizer.model"
)

# Words the format and the demo corpus use, plus common lyric words; every prefix becomes a BPE piece.
_WORDS = """
generate music from the given lyrics segment by genre start of end reference verse chorus intro
outro bridge pre inst instrumental male female youth powerful charismatic rock punk pop jazz soul
blues folk electronic dance hip hop rap metal piano guitar drums bass synth strings vocal vocals
bright dark sad happy energetic calm uplifting melancholic airy warm soft breathy clear the a an and
or of to in on at for with is are was be i you he she we they it my your our their me love night day
light heart time life dream fire rain sun moon sky sea road home run fly fall rise sing dance hold
stay go come know feel see never always forever again away together alone tonight world city star
stars baby oh yeah la na
""".split()


def _text_pieces() -> list[str]:
    chars = [chr(c) for c in range(0x21, 0x7F)] + ["▁"]
    pieces: set[str] = set()
    for word in _WORDS:
        for form in (word, word.capitalize()):
            for i in range(2, len(form) + 1):
                pieces.add("▁" + form[: i - 1])
                pieces.add(form[:i])
            pieces.add("▁" + form)
    pieces.update("▁" + c for c in chars if c != "▁")
    pieces.difference_update(chars)
    # Shorter pieces first: in BPE a higher score merges earlier, and every piece needs its parts.
    return chars + sorted(pieces, key=lambda p: (len(p), p))


def _reserved_name(i: int) -> str:
    codec_end = 45334 + 12 * 1024
    if 45334 <= i < codec_end:
        k, c = divmod(i - 45334, 1024)
        return f"<xcodec/{k}/{c}>"
    return f"<mm/{i}>"


def build_model_proto() -> pb.ModelProto:
    m = pb.ModelProto()
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = vocab.TEXT_VOCAB_END
    ts.byte_fallback = True
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
    ts.split_digits = True
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = True
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True

    def add(piece: str, type_: int, score: float = 0.0) -> None:
        p = m.pieces.add()
        p.piece, p.type, p.score = piece, type_, score

    add("<unk>", pb.ModelProto.SentencePiece.UNKNOWN)
    add("<s>", pb.ModelProto.SentencePiece.CONTROL)
    add("</s>", pb.ModelProto.SentencePiece.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", pb.ModelProto.SentencePiece.BYTE)
    text = _text_pieces()
    if len(m.pieces) + len(text) > vocab.TEXT_VOCAB_END:
        raise AssertionError("synthetic text vocabulary too large")
    for rank, piece in enumerate(text):
        add(piece, pb.ModelProto.SentencePiece.NORMAL, -float(rank))
    while len(m.pieces) < vocab.TEXT_VOCAB_END:
        add(f"<unused/{len(m.pieces)}>", pb.ModelProto.SentencePiece.UNUSED)
    for piece, idx in sorted(vocab.SPECIAL_PIECES.items(), key=lambda kv: kv[1]):
        assert len(m.pieces) == idx
        add(piece, pb.ModelProto.SentencePiece.NORMAL)
    while len(m.pieces) < vocab.N_SENTENCEPIECE_PIECES:
        add(_reserved_name(len(m.pieces)), pb.ModelProto.SentencePiece.NORMAL)
    return m


def build_synthetic_tokenizer(path: str | Path) -> Path:
    """Write the synthetic tokenizer model to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_model_proto().SerializeToString()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("YUE_TRAIN_CACHE", Path.home() / ".cache" / "yue_train"))


def synthetic_tokenizer_path() -> Path:
    """The cached synthetic tokenizer, built on first use."""
    path = cache_dir() / f"synthetic_mm_tokenizer_{SYNTHETIC_VERSION}.model"
    if not path.exists():
        build_synthetic_tokenizer(path)
    return path
