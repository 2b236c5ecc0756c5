"""Transcription of a vocal without lyrics: lines from timed segments, blocks from pauses, [verse] / [chorus]
from repeated lines (known answers on synthetic lines), and the Whisper path on a tiny random Whisper whose
vocabulary has timestamp tokens (random weights: structure is checked, not words)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yue_train.lyrics.forms import load_lyrics_file
from yue_train.lyrics.transcript import (
    LRC_NOTE_LINE,
    Line,
    TranscriptionError,
    clean_lines,
    guess_blocks,
    transcribe_audio,
    transcribe_folder,
)

RATE = 16_000
# (start, end, text) of each sung line; pauses of 2.7 s between the blocks, 2.5 s before and 3.2 s after.
SUNG = [
    (2.5, 4.0, "Walking down the empty road"),
    (4.2, 5.8, "Under skies of grey"),
    (8.5, 10.0, "Hold on, hold on to me"),
    (10.2, 11.8, "Never let me go"),
    (14.5, 16.0, "Morning comes without a sound"),
    (16.2, 17.8, "Nothing left to say"),
    (20.5, 22.0, "hold on hold on to me!"),
    (22.2, 23.8, "Never let me go."),
]
DURATION = 27.0
LABELS = ["verse", "chorus", "verse", "chorus"]


def sung_vocal() -> np.ndarray:
    """A tone where each line is sung, near silence elsewhere."""
    t = np.arange(int(DURATION * RATE)) / RATE
    audio = 1e-4 * np.random.default_rng(0).standard_normal(t.size)
    for start, end, _ in SUNG:
        on = (t >= start) & (t < end)
        audio[on] += 0.3 * np.sin(2 * np.pi * 220 * t[on])
    return audio.astype(np.float32)


def early_segments(audio: np.ndarray, sample_rate: int) -> list[tuple[float, float, str]]:
    """What Whisper gives: segments starting early, halfway into the pause before the singing (0.4 s at most),
    a bracketed non-lyric, and a line over the silence after the singing."""
    ends = [0.0] + [end for _, end, _ in SUNG]
    early = [
        (start - min(0.4, (start - prev) / 2), end, text)
        for (start, end, text), prev in zip(SUNG, ends[:-1], strict=True)
    ]
    return [(0.5, 2.0, "[Music]"), *early, (24.5, 26.0, "Thank you.")]  # no words; invented over silence


def test_blocks_come_from_pauses_and_repeated_blocks_are_choruses() -> None:
    lines = [Line(*s) for s in SUNG]
    pauses = [(0.0, 2.5), (5.8, 8.5), (11.8, 14.5), (17.8, 20.5), (23.8, DURATION)]
    blocks = guess_blocks(lines, pauses)
    assert [b.label for b in blocks] == LABELS
    assert [len(b.lines) for b in blocks] == [2, 2, 2, 2]


def test_without_pauses_repetition_alone_cuts_the_sections() -> None:
    # the same lines sung without a break (each ends where the next starts): no pause to cut at
    lines = [Line(i * 2.0, (i + 1) * 2.0, text) for i, (_, _, text) in enumerate(SUNG)]
    blocks = guess_blocks(lines, [])
    assert [b.label for b in blocks] == LABELS
    assert blocks[1].lines == ["Hold on, hold on to me", "Never let me go"]


def test_a_line_repeated_once_inside_a_verse_makes_no_chorus() -> None:
    texts = ["one two three four", "five six seven eight", "nine ten eleven twelve", "one two three four"]
    lines = [Line(i * 2.0, (i + 1) * 2.0, t) for i, t in enumerate(texts)]
    blocks = guess_blocks(lines, [])
    assert [(b.label, len(b.lines)) for b in blocks] == [("verse", 4)]


def test_clean_lines_keeps_words_inside_the_audio_in_time_order() -> None:
    segments = [(3.0, 4.0, " b "), (-0.5, 1.0, "a"), (2.0, 2.5, "  "), (5.5, 9.0, "c"), (7.0, 8.0, "d")]
    segments += [(1.0, 2.0, "(upbeat music)"), (2.5, 3.0, "♪ ♪")]
    assert clean_lines(segments, 6.0) == [Line(0.0, 1.0, "a"), Line(3.0, 4.0, "b"), Line(5.5, 6.0, "c")]


def test_transcribed_lrc_has_sections_at_the_singing_and_says_they_are_guesses(tmp_path: Path) -> None:
    audio = sung_vocal()
    result = transcribe_audio(early_segments, audio, RATE)
    starts = [ln.start for ln in result.lines]
    assert len(starts) == len(SUNG)  # [Music] and the line over silence dropped
    assert all(abs(got - want[0]) <= 0.1 for got, want in zip(starts, SUNG, strict=True))  # moved onto the voice
    target = tmp_path / "lyrics.transcribed.lrc"
    written = transcribe_folder(target, lambda: (audio, RATE), early_segments)
    assert target.read_text(encoding="utf-8").splitlines()[0] == LRC_NOTE_LINE
    assert written.report()["section_labels"].startswith("section labels guessed")
    sections = load_lyrics_file(target)  # what yue-prep build reads
    assert [s.label for s in sections] == [
        "intro",
        "verse",
        "inst",
        "chorus",
        "inst",
        "verse",
        "inst",
        "chorus",
        "outro",
    ]
    sung = [s for s in sections if s.label in ("verse", "chorus")]
    assert all(abs(s.start - SUNG[2 * i][0]) <= 0.1 for i, s in enumerate(sung))
    assert sung[1].lyrics == "Hold on, hold on to me\nNever let me go"
    # a corrected file is the user's: used as it is, nothing transcribed
    target.write_text("[00:01.00][chorus]\n[00:01.00] fixed by hand\n", encoding="utf-8")
    again = transcribe_folder(target, lambda: pytest.fail("the vocal is not read again"), early_segments)
    assert again.transcription is None and "fixed by hand" in target.read_text()


def test_a_transcript_without_words_is_an_error() -> None:
    with pytest.raises(TranscriptionError, match="no words"):
        transcribe_audio(lambda a, r: [(0.0, 1.0, "  ")], np.zeros(RATE, dtype=np.float32), RATE)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from tests.evaluation.random_models import save_random_whisper

    torch.manual_seed(0)
    return save_random_whisper(tmp_path_factory.mktemp("whisper_ts"), timestamps=True, positions=16)


def test_whisper_segments_are_timed_inside_the_audio_and_make_a_readable_lrc(tiny_whisper: Path, tmp_path) -> None:
    from yue_train.evaluation.metrics.lyrics import whisper_transcriber

    asr = whisper_transcriber(str(tiny_whisper))
    audio = sung_vocal()[: 6 * RATE]
    segments = asr.segments(audio, RATE)  # 12 decoder steps at most (positions=16)
    assert segments, "the tiny model predicts timestamps (the first token after the prompt is one)"
    assert all(0.0 <= start <= end <= 6.0 and text and "<|" not in text for start, end, text in segments)
    target = tmp_path / "lyrics.transcribed.lrc"
    result = transcribe_folder(target, lambda: (audio, RATE), lambda a, r: segments).transcription
    assert result is not None
    starts = [ln.start for ln in result.lines]
    assert starts == sorted(starts) and all(0.0 <= s < 6.0 for s in starts)
    assert target.read_text(encoding="utf-8").startswith(LRC_NOTE_LINE + "\n")
    sections = load_lyrics_file(target)
    assert {s.label for s in sections} <= {"intro", "verse", "chorus", "inst", "outro"}
    assert [s.start for s in sections] == sorted(s.start for s in sections)
