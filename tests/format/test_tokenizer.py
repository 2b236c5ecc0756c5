import pytest

from yue_train.format import vocab
from yue_train.tokenizer import build_synthetic_tokenizer, load_tokenizer
from yue_train.tokenizer.mm_tokenizer import MMTokenizer, TokenizerMismatchError


def test_synthetic_tokenizer_has_the_real_id_layout(synth_tokenizer):
    sp = synth_tokenizer.sp
    assert sp.get_piece_size() == vocab.N_SENTENCEPIECE_PIECES
    for piece, idx in vocab.SPECIAL_PIECES.items():
        assert sp.piece_to_id(piece) == idx
    assert (sp.bos_id(), sp.eos_id(), sp.pad_id()) == (1, 2, -1)
    assert synth_tokenizer.vocab_size == 83_738
    # newline is the byte-fallback piece 13, as in LLaMA; every text id stays below 32,000
    assert 13 in synth_tokenizer.encode("a\nb")
    assert max(synth_tokenizer.encode("Generate music ünïcode 123 ♪ [start_of_segment]")) < vocab.TEXT_VOCAB_END


def test_synthetic_tokenizer_is_deterministic(tmp_path):
    a = build_synthetic_tokenizer(tmp_path / "a.model").read_bytes()
    b = build_synthetic_tokenizer(tmp_path / "b.model").read_bytes()
    assert a == b


@pytest.mark.parametrize("which", ["synth", "real"])
def test_split_on_registered_pieces(which, request):
    tok = request.getfixturevalue(f"{which}_tokenizer")
    ids = tok.encode("x<SOA>y<EOD><CLS><PAD>")
    assert 32001 in ids and 32000 in ids
    assert ids[-2:] == [83734, 83737]  # the four appended pieces follow the model's 83,734
    # "<s_local>" and "<s>" start at the same place: the piece registered first wins, as in the official code
    assert tok.encode("<s_local>") == [32007]
    assert tok.encode("<s>") == [1]
    # <xcodec> is not a registered split piece: it stays text
    assert 32016 not in tok.encode("<xcodec>")


@pytest.mark.parametrize("which", ["synth", "real"])
def test_call_boundaries_change_ids(which, request):
    tok = request.getfixturevalue(f"{which}_tokenizer")
    # each call gets SentencePiece's word-boundary prefix, so two calls are not one call
    assert tok.encode("[end_of_segment]") + tok.encode("[start_of_segment]") != tok.encode(
        "[end_of_segment][start_of_segment]"
    )


def test_real_tokenizer_known_ids(real_tokenizer):
    # ids visible in the golden CoT streams of the official preprocessing
    assert real_tokenizer.encode("[start_of_segment]") == [518, 2962, 29918, 974, 29918, 28192, 29962]
    assert real_tokenizer.encode("[end_of_segment]") == [518, 355, 29918, 974, 29918, 28192, 29962]


def test_decode_shows_special_pieces(synth_tokenizer):
    ids = synth_tokenizer.encode("love") + [32001, 32016, 45334 + 5, 32002, 1, 83737]
    text = synth_tokenizer.decode(ids)
    assert text.startswith("love<SOA><xcodec>")
    assert "<EOA><s><PAD>" in text


def test_wrong_tokenizer_file_is_refused(tmp_path):
    import sentencepiece as spm

    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n" * 50)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "small"), vocab_size=12, minloglevel=2
    )
    with pytest.raises(TokenizerMismatchError, match="83734"):
        MMTokenizer(tmp_path / "small.model")
    with pytest.raises(FileNotFoundError, match="tokenizer model not found"):
        load_tokenizer(tmp_path / "missing.model")
