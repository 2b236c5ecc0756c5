"""Round trips: codes -> document -> parse -> the same codes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.format.songs import make_song
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format.parsing import ParseError, parse_stage1_output, parse_stage2_frames, parse_stage2_output
from yue_train.format.song import Segment


@settings(max_examples=40, deadline=None)
@given(
    # >= 51 frames: a segment of exactly 1 s sits on the float edge of the official "frames < fps" filter
    seg_frames=st.lists(st.integers(min_value=51, max_value=400), min_size=1, max_size=5),
    seed=st.integers(0, 2**31 - 1),
)
def test_cot_round_trip(synth_tokenizer, seg_frames, seed):
    rng = np.random.default_rng(seed)
    total = sum(seg_frames)
    song = make_song((1,), ("verse",))
    song.vocals = rng.integers(0, 1024, size=(1, total))
    song.instrumental = rng.integers(0, 1024, size=(1, total))
    song.audio_length_in_sec = total / 50
    bounds = np.cumsum([0, *seg_frames])
    song.segments = [
        Segment(f"[s{n}]\n", int(a), int(b), (b - a) / 50)
        for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    doc = seq.build_cot_document(synth_tokenizer, song)
    vocal, inst = parse_stage1_output(doc.input_ids)
    assert np.array_equal(vocal, song.vocals) and np.array_equal(inst, song.instrumental)


@settings(max_examples=20, deadline=None)
@given(prompt_s=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_generation_round_trip_skips_the_reference(synth_tokenizer, prompt_s, seed):
    """A first-section prompt with a reference, plus generated audio, parses to the generated audio only."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 1024, size=(1, 500))
    reference = seq.reference_ids_from_codes(0, prompt_s, codes=ref)
    sections = seq.split_lyrics("[verse]\nla\n[chorus]\nna\n")
    gen = [rng.integers(0, 1024, size=(2, n)) for n in (120, 75)]
    ids = seq.first_section_prompt(synth_tokenizer, "pop", sections, reference).ids.tolist()
    for n, g in enumerate(gen):
        if n:
            ids += seq.next_section_prompt(synth_tokenizer, sections[n]).ids.tolist()
        ids += cl.interleave(45334 + g[0], 45334 + g[1]).tolist() + [32002]
    vocal, inst = parse_stage1_output(np.array(ids), has_reference=True)
    assert np.array_equal(vocal[0], np.concatenate([g[0] for g in gen]))
    assert np.array_equal(inst[0], np.concatenate([g[1] for g in gen]))


@settings(max_examples=25, deadline=None)
@given(n_chunks=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_stage2_round_trip(n_chunks, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1024, size=(8, 300 * n_chunks))
    doc = seq.build_stage2_document(codes, "x")
    assert np.array_equal(parse_stage2_output(doc.input_ids), codes)


def test_parse_errors_are_clear():
    with pytest.raises(ParseError, match="2 <SOA> but 1 <EOA>"):
        parse_stage1_output(np.array([32001, 45334, 45334, 32002, 32001, 45334]))
    with pytest.raises(ParseError, match="section 0.*not a codebook-0 id"):
        parse_stage1_output(np.array([32001, 32016, 45334, 46358, 32002]))
    with pytest.raises(ParseError, match="not a codebook-3 id"):
        parse_stage2_frames(np.array([45334 + 1024 * k for k in range(8)][:3] + [45334] + [0] * 4))
    song = make_song((2,), ("verse",))
    doc = seq.build_stage2_document(np.tile(np.arange(300) % 1024, (8, 1)), "x")
    ids = doc.input_ids.copy()
    ids[2] += 1  # condition no longer matches the frames
    with pytest.raises(ParseError, match="differs from the chunk's condition"):
        parse_stage2_output(ids)
    assert song.n_frames == 100
