"""The ``structure`` metric on stage-1 ids and generation reports with known answers."""

import numpy as np
import pytest

from tests.evaluation.songs import section_ids
from yue_train.evaluation.metrics import build_metric
from yue_train.evaluation.metrics.base import SongAudio
from yue_train.evaluation.metrics.structure import failed_parses


def _song(info):
    return SongAudio("s", 16_000, np.zeros(0, np.float32), info=info)


def test_counts_sections_eoa_failed_parses_and_length():
    prompt = [5, 6, 7]
    ids = np.array(prompt + section_ids(100) + [8, 9] + section_ids(50, bad=True))
    info = {
        "sections_requested": 3,
        "sections": [{"new_tokens": 201, "eoa": True}, {"new_tokens": 101, "eoa": False}],
        "frames": 150,
        "stage1_ids": ids,
    }
    values = build_metric("structure").score(_song(info)).values
    assert values == {
        "seconds": 3.0,  # 150 frames at 50 per second
        "sections_requested": 3.0,
        "sections_generated": 2.0,
        "sections_fraction": pytest.approx(2 / 3),
        "eoa_fraction": 0.5,
        "new_tokens": 302.0,
        "failed_parses": 1.0,
    }


def test_eoa_from_token_counts_when_the_report_has_no_flag():
    # A section cut by the budget holds max_new_tokens ids plus the appended <EOA>.
    info = {"sections": [{"new_tokens": 31}, {"new_tokens": 12}, {"new_tokens": 30}], "max_new_tokens": 30}
    assert build_metric("structure").score(_song(info)).values["eoa_fraction"] == pytest.approx(2 / 3)


def test_failed_parses_counts_a_reference_block_out_and_unbalanced_blocks_in():
    reference = section_ids(20, bad=True)  # the ICL reference block comes first and is not a section
    ids = np.array(reference + section_ids(10) + section_ids(10))
    assert failed_parses(ids, 2) == 0
    assert failed_parses(ids, 3) == 1
    assert failed_parses(ids[:-1], 2) == 2  # the last <EOA> missing: nothing pairs up


def test_a_reference_song_gets_its_length_only():
    song = SongAudio("ref", 16_000, np.zeros(24_000, np.float32))
    assert build_metric("structure").score(song).values == {"seconds": 1.5}
