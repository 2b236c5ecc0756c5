"""End to end on real speech: espeak-ng lines with known starts, aligned by the offline pocketsphinx backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.lyrics.espeak_song import CHORUS, LYRICS, VERSE, espeak_available, espeak_song
from yue_train.lyrics.song_folder import align_audio

pytest.importorskip("pocketsphinx", reason="the pocketsphinx backend needs `pip install pocketsphinx` (align extra)")
pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")


def test_pocketsphinx_places_lines_and_sections_where_the_speech_starts(tmp_path: Path) -> None:
    from yue_train.lyrics.backends import load_aligner

    song = espeak_song(tmp_path)
    result = align_audio(load_aligner("pocketsphinx"), song.audio, LYRICS)
    errors = [abs(ln.start - t) for ln, t in zip(result.lines, song.line_starts, strict=True) if ln.start is not None]
    print(f"pocketsphinx line-start error: median {np.median(errors):.3f} s, worst {max(errors):.3f} s")
    assert [ln.status for ln in result.lines] == ["ok"] * 5, [(ln.status, ln.score) for ln in result.lines]
    assert max(errors) <= 0.3
    assert result.unmatched == []
    sung = [s for s in result.sections if s.block is not None]
    assert [s.label for s in result.sections] == ["intro", "verse", "inst", "chorus", "outro"]
    for sec, truth in zip(sung, song.section_starts, strict=True):
        assert abs(sec.start - truth) <= 0.3, (sec.label, sec.start, truth)


def test_pocketsphinx_flags_a_skipped_line_and_an_extra_one(tmp_path: Path) -> None:
    """The singer skips the chorus's first line and sings a line the lyrics do not have."""
    from yue_train.lyrics.backends import load_aligner

    song = espeak_song(tmp_path, VERSE, [CHORUS[1], "tell me where the river goes"])
    result = align_audio(load_aligner("pocketsphinx"), song.audio, LYRICS)
    assert [ln.status for ln in result.lines] == ["ok", "ok", "ok", "skipped", "ok"]
    assert abs(result.lines[4].start - song.line_starts[3]) <= 0.3
    assert [u.kind for u in result.unmatched] == ["extra"]
    assert song.line_starts[4] - 0.3 <= result.unmatched[0].start <= song.line_starts[4] + 1.0
