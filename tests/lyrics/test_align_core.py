"""Forced alignment of known lines against synthetic emissions whose every character's frames are known."""

from __future__ import annotations

import pytest

from tests.lyrics.synthetic import FRAME_S, SyntheticVocal
from yue_train.lyrics.align import AlignmentError, align_blocks, align_lines, sections_from_lines
from yue_train.lyrics.plain import Block, parse_plain

LINES = [
    "the night is young and so are we",
    "we dance until the morning light",
    "hold me close and never let go",
    "sing it loud for everyone to hear",
    "the stars are falling one by one",
]


def _check_exact(lines, vocal: SyntheticVocal, which: list[int], truth_at: list[int]) -> None:
    for i, k in zip(which, truth_at, strict=True):
        first, end = vocal.truth[k]
        got = lines[i]
        assert got.start is not None and got.end is not None, f"line {i} not found"
        assert abs(got.start / FRAME_S - first) <= 1, (i, got.start / FRAME_S, first)
        assert abs(got.end / FRAME_S - end) <= 1, (i, got.end / FRAME_S, end)


def _song(order: list[str], seed: int = 0) -> SyntheticVocal:
    v = SyntheticVocal(seed).silence(25)
    for text in order:
        v.sing(text).silence(int(v.rng.integers(8, 40)))
    return v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_line_within_one_frame(seed: int) -> None:
    v = _song(LINES, seed)
    lines, unmatched = align_lines(v.emissions(), LINES, v.silent())
    _check_exact(lines, v, list(range(5)), list(range(5)))
    assert [ln.status for ln in lines] == ["ok"] * 5
    assert min(ln.score for ln in lines) > 0.8
    assert unmatched == []


def test_skipped_line_is_flagged_and_the_others_stay() -> None:
    v = _song([LINES[0], LINES[1], LINES[3], LINES[4]])
    lines, unmatched = align_lines(v.emissions(), LINES, v.silent())
    assert lines[2].status == "skipped" and lines[2].start is None and lines[2].score == 0
    _check_exact(lines, v, [0, 1, 3, 4], [0, 1, 2, 3])
    assert unmatched == []


def test_extra_line_is_reported_and_the_others_stay() -> None:
    extra = "quiz boxing wizard vex jumpy"
    v = _song([LINES[0], LINES[1], extra, LINES[2], LINES[3], LINES[4]])
    lines, unmatched = align_lines(v.emissions(), LINES, v.silent())
    _check_exact(lines, v, [0, 1, 2, 3, 4], [0, 1, 3, 4, 5])
    assert [u.kind for u in unmatched] == ["extra"]
    first, end = v.truth[2]
    assert abs(unmatched[0].start / FRAME_S - first) <= 1 and abs(unmatched[0].end / FRAME_S - end) <= 1


def test_repeated_line_is_flagged_as_a_repeat() -> None:
    v = _song([LINES[0], LINES[1], LINES[1], LINES[2], LINES[3], LINES[4]])
    lines, unmatched = align_lines(v.emissions(), LINES, v.silent())
    assert lines[1].status == "repeated"
    assert [(u.kind, u.line) for u in unmatched] == [("repeat", 1)]
    _check_exact(lines, v, [0, 2, 3, 4], [0, 3, 4, 5])
    # line 1 sits on one of the two occurrences, whole
    assert any(abs(lines[1].start / FRAME_S - v.truth[k][0]) <= 1 for k in (1, 2))


def test_no_line_starts_in_silence() -> None:
    """A noise burst in a silent stretch looks like the line's first token; the VAD keeps the line off it."""
    v = _song(LINES[:2])
    em = v.emissions()
    lp = em.log_probs.copy()
    first_line_start = v.truth[0][0]
    noise_at = first_line_start - 15  # inside the leading silence
    lp[noise_at] = lp[v.truth[0][0]]  # the same token as the line's first heard there
    from dataclasses import replace

    lines, _ = align_lines(replace(em, log_probs=lp), LINES[:2], v.silent())
    assert abs(lines[0].start / FRAME_S - first_line_start) <= 1


def test_sections_start_at_their_first_line_and_gaps_become_instrumental() -> None:
    text = "[intro]\n[verse]\n" + "\n".join(LINES[:2]) + "\n\n[chorus]\n" + "\n".join(LINES[2:]) + "\n"
    blocks = parse_plain(text)
    v = SyntheticVocal(3).silence(150)  # 3 s intro
    v.sing(LINES[0]).silence(20).sing(LINES[1]).silence(200)  # 4 s instrumental break
    v.sing(LINES[2]).silence(10).sing(LINES[3]).silence(10).sing(LINES[4]).silence(30)
    duration = len(v.frames) * FRAME_S
    result = align_blocks(v.emissions(), blocks, duration, v.silent())
    got = [
        (s.label, round(s.start / FRAME_S), None if s.end is None else round(s.end / FRAME_S)) for s in result.sections
    ]
    assert [g[0] for g in got] == ["intro", "verse", "inst", "chorus"]
    assert got[0][1] == 0 and got[0][2] == got[1][1]
    assert abs(got[1][1] - v.truth[0][0]) <= 1 and abs(got[1][2] - v.truth[1][1]) <= 1
    assert got[2][1] == got[1][2] and got[2][2] == got[3][1]
    assert abs(got[3][1] - v.truth[2][0]) <= 1 and got[3][2] is None  # a 0.6 s tail joins the last section
    assert result.score > 0.8


def test_a_sung_block_with_no_line_found_fails_alignment() -> None:
    blocks = [Block("verse", ["a b"]), Block("chorus", ["c d"])]
    from yue_train.lyrics.align import AlignedLine

    lines = [AlignedLine(0, 0, "a b", 1.0, 2.0, 0.9, "ok"), AlignedLine(1, 1, "c d", None, None, 0.0, "skipped")]
    with pytest.raises(AlignmentError, match=r"block 1 \[chorus\]"):
        sections_from_lines(blocks, lines, 10.0)


def test_parse_plain_blocks() -> None:
    blocks = parse_plain("first line\n[ti:Song]\n[Chorus]\n[00:12.50]  sing   it\n\n[inst]\n[outro]\nbye\n")
    assert [(b.label, b.lines) for b in blocks] == [
        ("verse", ["first line"]),
        ("Chorus", ["sing it"]),
        ("inst", []),
        ("outro", ["bye"]),
    ]
