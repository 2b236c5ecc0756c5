"""Energy VAD on a vocal stem: voiced exactly where the singing is (from a little before to a little after), silent elsewhere."""

from __future__ import annotations

import numpy as np

from yue_train.lyrics.vad import voiced_frames


def test_voiced_where_the_tone_is_and_quiet_breath_is_silent() -> None:
    sr, frame_s = 16_000, 0.02
    t = np.arange(4 * sr) / sr
    audio = 1e-4 * np.random.default_rng(0).standard_normal(t.size)  # breath-level noise floor (-80 dB)
    sung = (t >= 1.0) & (t < 2.5)
    audio[sung] += 0.3 * np.sin(2 * np.pi * 220 * t[sung])
    voiced = voiced_frames(audio.astype(np.float32), sr, frame_s, 200, lead_s=0.06, tail_s=0.02)
    expected = np.zeros(200, dtype=bool)
    expected[50 - 3 : 125 + 1] = True
    assert np.array_equal(voiced, expected)


def test_silent_audio_has_no_voiced_frame() -> None:
    assert not voiced_frames(np.zeros(16_000, dtype=np.float32), 16_000, 0.02, 50).any()
