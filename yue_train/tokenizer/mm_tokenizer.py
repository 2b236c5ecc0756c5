"""A SentencePiece wrapper that gives exactly the ids of YuE's official ``_MMSentencePieceTokenizer``.

Written by hand (not ``transformers.LlamaTokenizer``) because the official wrapper's behaviour is part of
the token format: it splits text on its registered special pieces and encodes each piece between them
with a separate SentencePiece call (so each gets the word-boundary prefix), and it appends four pieces
(<CLS> <SEP> <MASK> <PAD>) after the model's 83,734.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

import sentencepiece as spm

from yue_train.format import vocab
from yue_train.format.files import check_regular_file
from yue_train.format.provenance import file_fingerprint

# The YuE tokenizer.model is 1.7 MB; a file this large is not a SentencePiece model of any kind worth parsing.
MAX_TOKENIZER_BYTES = 64 * 2**20


class TokenizerMismatchError(ValueError):
    """The tokenizer file does not have the YuE id layout."""


class TokenizerFileError(ValueError):
    """The tokenizer path is not a SentencePiece model file at all."""


def open_sentencepiece(path: Path) -> spm.SentencePieceProcessor:
    """Parse ``path`` as a SentencePiece model; anything else (a text file, a FIFO, a 10 GB file, random
    bytes) is refused with one line. Every CLI and the Python API load tokenizers through here."""
    hint = "pass the YuE tokenizer.model, or omit it to use the generated synthetic tokenizer"
    try:
        check_regular_file(path, "tokenizer model")
    except FileNotFoundError:
        raise FileNotFoundError(f"tokenizer model not found: {path} ({hint})") from None
    except ValueError as e:
        raise TokenizerFileError(f"{e} ({hint})") from None
    size = path.stat().st_size
    if size > MAX_TOKENIZER_BYTES:
        raise TokenizerFileError(
            f"tokenizer model {path} is {size:,} bytes, too large for a SentencePiece model "
            f"(limit {MAX_TOKENIZER_BYTES:,}); {hint}"
        )
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:  # SentencePiece reports every parse failure as a RuntimeError
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise TokenizerFileError(f"{path} is not a SentencePiece tokenizer model ({reason}); {hint}") from None


class MMTokenizer:
    def __init__(self, model_file: str | Path) -> None:
        path = Path(model_file)
        self.sp = open_sentencepiece(path)
        self.path = path
        self._check_layout()
        self._split_ids = {piece: self._piece_id(piece) for piece in vocab.SPLIT_PIECES}
        self._id_to_special = {i: p for p, i in self._split_ids.items()}
        self._id_to_special.update({i: p for p, i in vocab.SPECIAL_PIECES.items()})

    def _check_layout(self) -> None:
        n = self.sp.get_piece_size()
        if n != vocab.N_SENTENCEPIECE_PIECES:
            raise TokenizerMismatchError(
                f"{self.path}: {n} pieces, the YuE mm tokenizer v0.2 has {vocab.N_SENTENCEPIECE_PIECES}"
            )
        for piece, expected in vocab.SPECIAL_PIECES.items():
            got = self.sp.piece_to_id(piece)
            if got != expected:
                raise TokenizerMismatchError(f"{self.path}: {piece} has id {got}, expected {expected}")
        if (self.sp.bos_id(), self.sp.eos_id()) != (vocab.BOS, vocab.EOS):
            raise TokenizerMismatchError(f"{self.path}: bos/eos ids are not 1/2")

    def _piece_id(self, piece: str) -> int:
        if piece in vocab.EXTRA_PIECES:
            return vocab.N_SENTENCEPIECE_PIECES + vocab.EXTRA_PIECES.index(piece)
        return self.sp.piece_to_id(piece)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the SentencePiece model file: what shards, checkpoints and models record."""
        return file_fingerprint(self.path)

    @property
    def is_synthetic(self) -> bool:
        """Whether this is the generated stand-in (its text range ends in ``<unused/N>`` filler pieces)."""
        last = vocab.TEXT_VOCAB_END - 1
        return self.sp.id_to_piece(last) == f"<unused/{last}>"

    @property
    def vocab_size(self) -> int:
        """Ids the wrapper can produce: the model's pieces plus the four appended ones (83,738)."""
        return vocab.N_SENTENCEPIECE_PIECES + len(vocab.EXTRA_PIECES)

    def encode(self, text: str) -> list[int]:
        """One official ``tokenize`` call: split on registered pieces, SentencePiece-encode the rest."""
        ids: list[int] = []
        pos = 0
        while True:
            best_piece, best_at = None, -1
            for piece in self._split_ids:  # registration order breaks ties, as in the official code
                at = text.find(piece, pos)
                if at != -1 and (best_piece is None or at < best_at):
                    best_piece, best_at = piece, at
            if best_piece is None:
                break
            if best_at > pos:
                ids.extend(self.sp.encode_as_ids(text[pos:best_at]))
            ids.append(self._split_ids[best_piece])
            pos = best_at + len(best_piece)
        if pos < len(text):
            ids.extend(self.sp.encode_as_ids(text[pos:]))
        return ids

    def decode(self, ids: list[int]) -> str:
        """Readable text: text runs decoded by SentencePiece, special and codec ids shown by name."""
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            i = int(i)
            if i < vocab.TEXT_VOCAB_END and i not in self._id_to_special:
                run.append(i)
                continue
            if run:
                out.append(self.sp.decode_ids(run))
                run = []
            out.append(self.id_to_piece(i))
        if run:
            out.append(self.sp.decode_ids(run))
        return "".join(out)

    def id_to_piece(self, i: int) -> str:
        if i in self._id_to_special:
            return self._id_to_special[i]
        if 0 <= i < vocab.N_SENTENCEPIECE_PIECES:
            return self.sp.id_to_piece(i)
        return f"<id {i}>"


@lru_cache(maxsize=4)
def _cached(path: str) -> MMTokenizer:
    return MMTokenizer(path)


def load_tokenizer(path: str | Path | None = None) -> MMTokenizer:
    """The tokenizer at ``path``, or the generated synthetic one when ``path`` is None or "synthetic"."""
    if path is None or str(path) == "synthetic":
        from yue_train.tokenizer.synthetic import synthetic_tokenizer_path

        path = synthetic_tokenizer_path()
    return _cached(str(Path(path).resolve()))
