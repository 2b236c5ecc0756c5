"""The transformers CTC aligner's loading and framing code, on a tiny random Wav2Vec2ForCTC built from a config."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

from yue_train.lyrics.backends import load_aligner
from yue_train.lyrics.backends.ctc import AlignerWeightsError, CtcAligner
from yue_train.lyrics.song_folder import align_audio

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "|"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC

    folder = tmp_path_factory.mktemp("tiny_w2v2")
    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(string.ascii_lowercase) + ["'"])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    Wav2Vec2CTCTokenizer(str(folder / "vocab.json")).save_pretrained(folder)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder


def test_loads_from_a_folder_and_frames_the_song_exactly(tiny_model: Path) -> None:
    aligner = load_aligner(str(tiny_model), download=False)
    assert isinstance(aligner, CtcAligner)
    assert aligner.frame_s == pytest.approx(0.02) and aligner.blank == 0
    audio = np.random.default_rng(0).standard_normal(45 * 16_000 + 100).astype(np.float32) * 0.1
    em = aligner.emissions(audio)  # three windows: 20 s + 20 s + 5 s
    assert em.log_probs.shape == (2250, 32)
    np.testing.assert_allclose(np.logaddexp.reduce(em.log_probs, axis=1), 0.0, atol=1e-4)


def test_tokenize_spells_words_with_the_delimiter(tiny_model: Path) -> None:
    aligner = CtcAligner(str(tiny_model), download=False)
    v = aligner.vocab
    assert aligner.tokenize("Héllo, (oh) World!") == [v[c] for c in "hello"] + [v["|"]] + [v[c] for c in "world"]
    assert aligner.tokenize("!!! ...") == []


def test_a_whole_alignment_runs_on_the_random_model(tiny_model: Path) -> None:
    aligner = CtcAligner(str(tiny_model), download=False)
    audio = np.zeros(8 * 16_000, dtype=np.float32)
    audio[16_000 : 3 * 16_000] = 0.3 * np.sin(np.arange(2 * 16_000) * 0.1)
    result = align_audio(aligner, audio, "[verse]\nla la la\n")
    assert len(result.lines) == 1 and 0.0 <= result.lines[0].score <= 1.0


def test_missing_weights_name_the_model_and_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(AlignerWeightsError, match=r"huggingface-cli download no-such/aligner"):
        CtcAligner("no-such/aligner", download=False)


@pytest.mark.slow
def test_non_latin_lyrics_are_romanized(tiny_model: Path) -> None:
    pytest.importorskip("uroman")
    aligner = CtcAligner(str(tiny_model), download=False)
    v = aligner.vocab
    assert aligner.tokenize("你好") == [v[c] for c in "nihao"]
