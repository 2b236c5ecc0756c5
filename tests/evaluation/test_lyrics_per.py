"""``lyrics_per``: phoneme error rates with known answers (CMU phones for English, pinyin for Mandarin)."""

from __future__ import annotations

import pytest

from yue_train.evaluation.metrics.lyrics import phoneme_error_rate
from yue_train.evaluation.metrics.phonemes import phonemes

LYRICS = "[verse]\nThe night is young,\nand so are we"


def test_identical_lyrics_score_zero() -> None:
    assert phoneme_error_rate(LYRICS, "the night is young and so are we") == {"per": 0.0}
    assert phoneme_error_rate("", "anything") == {}


def test_english_words_are_cmu_phones_and_one_substituted_word_is_its_phone_edits() -> None:
    pytest.importorskip("pocketsphinx", reason="the CMU dictionary ships in the pocketsphinx wheel")
    assert phonemes("the night") == ["DH", "AH", "N", "AY", "T"]
    n = len(phonemes("the night is young and so are we"))  # 2 + 3 + 2 + 3 + 3 + 2 + 2 + 2
    assert n == 19
    # night -> light: N AY T -> L AY T, one substitution
    assert phoneme_error_rate(LYRICS, "the light is young and so are we")["per"] == pytest.approx(1 / n)
    # young -> yearn: Y AH NG -> Y ER N, two substitutions (a word error rate would count one)
    assert phoneme_error_rate(LYRICS, "the night is yearn and so are we")["per"] == pytest.approx(2 / n)
    assert phonemes("zzyzxq") == list("zzyzxq")  # not in the dictionary: its letters


def test_mandarin_goes_through_pinyin() -> None:
    pytest.importorskip("pypinyin")
    assert phonemes("你好") == ["n", "i3", "h", "ao3"]
    assert phoneme_error_rate("你好世界", "你号世界")["per"] == pytest.approx(1 / 8)  # hao3 -> hao4: the tone
    assert phoneme_error_rate("你好世界", "你们世界")["per"] == pytest.approx(2 / 8)  # hao3 -> men5


def test_other_scripts_are_characters() -> None:
    assert phonemes("こんにちは") == list("こんにちは")
