import numpy as np
import pytest

from tests.format.songs import make_song
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format import vocab
from yue_train.format.roles import Role
from yue_train.format.song import Segment


def _find(ids: np.ndarray, pattern: list[int], start: int = 0) -> int:
    for i in range(start, len(ids) - len(pattern) + 1):
        if ids[i : i + len(pattern)].tolist() == pattern:
            return i
    raise AssertionError(f"{pattern} not found")


# ------------------------------------------------------------------------------------------- CoT


def test_cot_document_layout_by_hand(synth_tokenizer):
    tok = synth_tokenizer
    song = make_song((2, 0.5, 3), ("verse", "chorus", "outro"))
    doc = seq.build_cot_document(tok, song)
    v, i = cl.track_ids(song.vocals), cl.track_ids(song.instrumental)
    lyrics = "\n".join(s.line_content for s in song.segments)  # the header lists every segment, skipped ones too
    expected = tok.encode(f"Generate music from the given lyrics segment by segment.\n[Genre] {song.genres}\n{lyrics}")
    for seg in (song.segments[0], song.segments[2]):  # the 0.5 s segment is under one second: skipped
        dual = np.empty(2 * seg.n_frames, dtype=np.int64)
        dual[0::2], dual[1::2] = v[seg.frame_start : seg.frame_end], i[seg.frame_start : seg.frame_end]
        expected += tok.encode("[start_of_segment]") + tok.encode(seg.line_content) + [32001, 32016]
        expected += dual.tolist() + [32002] + tok.encode("[end_of_segment]")
    expected += [32000]
    assert doc.input_ids.tolist() == expected
    assert doc.meta == {"id": "song", "mode": "cot", "segments_used": 2, "segments_skipped": 1}
    assert "<" not in tok.decode(expected[:5])  # no bos at the start of a training document
    assert expected[0] != vocab.BOS


def test_cot_roles_mark_every_token(synth_tokenizer):
    song = make_song((2, 3), ("verse", "chorus"))
    doc = seq.build_cot_document(synth_tokenizer, song)
    ids, roles = doc.input_ids, doc.roles
    audio = (ids >= cl.CODEC_OFFSET) & (ids < cl.CODEC_ID_END)
    assert set(roles[audio].tolist()) == {Role.VOCAL, Role.INST}
    assert (roles[audio] == Role.VOCAL).sum() == (roles[audio] == Role.INST).sum() == 250
    first_audio = np.flatnonzero(audio)[0]
    assert roles[first_audio] == Role.VOCAL and roles[first_audio + 1] == Role.INST
    assert set(roles[np.isin(ids, [32000, 32001, 32002, 32016])].tolist()) == {Role.SPECIAL}
    assert set(roles[ids < 32000].tolist()) == {Role.TEXT}


def test_cot_segment_filters(synth_tokenizer):
    song = make_song((3, 3, 3))
    segs = song.segments
    song.segments = [
        segs[0],
        Segment("[empty]\n", 200, 200, 0.0),  # empty range
        Segment("[short]\n", 150, 199, 0.98),  # 49 frames < 1 s at 50 fps
        Segment("[past]\n", 440, 460, 0.4),  # ends past the 450 codes
        segs[2],
    ]
    doc = seq.build_cot_document(synth_tokenizer, song)
    assert doc.meta["segments_used"] == 2 and doc.meta["segments_skipped"] == 3
    song.segments = [Segment("[short]\n", 0, 10, 0.2)]
    with pytest.raises(seq.SequenceError, match="no usable segment"):
        seq.build_cot_document(synth_tokenizer, song)


# ------------------------------------------------------------------------------------------- ICL


def _reference_block(doc, tok) -> tuple[int, int]:
    """(start, end) of the reference audio inside <SOA><xcodec> ... <EOA> after [start_of_reference]."""
    ids = doc.input_ids
    at = _find(ids, tok.encode("[start_of_reference]"))
    soa = _find(ids, [32001, 32016], at)
    eoa = int(np.flatnonzero(ids[soa:] == 32002)[0]) + soa
    assert ids[eoa + 1 : eoa + 1 + len(tok.encode("[end_of_reference]"))].tolist() == tok.encode("[end_of_reference]")
    return soa + 2, eoa


@pytest.mark.parametrize("mode", seq.ICL_PROMPT_MODES)
def test_icl_document_is_cot_plus_a_reference_slice(synth_tokenizer, mode):
    tok = synth_tokenizer
    song = make_song((30, 25, 30), ("verse", "chorus", "outro"), msa=[])  # no chorus in msa: anywhere
    cot = seq.build_cot_document(tok, song).input_ids
    doc = seq.build_icl_document(tok, song, mode, seq.record_rng(7, song.id))
    lo, hi = _reference_block(doc, tok)
    header_end = lo - 2 - len(tok.encode("[start_of_reference]"))
    tail_start = hi + 1 + len(tok.encode("[end_of_reference]"))
    # outside the reference block the document is the CoT document
    assert np.array_equal(np.concatenate([doc.input_ids[:header_end], doc.input_ids[tail_start:]]), cot)
    prompt = doc.input_ids[lo:hi]
    step = 2 if mode == "dual" else 1
    stream = {
        "dual": cl.interleave(cl.track_ids(song.vocals), cl.track_ids(song.instrumental)),
        "vocal": cl.track_ids(song.vocals),
        "inst": cl.track_ids(song.instrumental),
        "mixture": cl.track_ids(song.mixture),
    }[mode]
    start = doc.meta["prompt_start"]
    assert np.array_equal(prompt, stream[start : start + len(prompt)])  # contiguous slice of the right stream
    assert 20 * 50 * step <= len(prompt) <= 40 * 50 * step
    assert len(prompt) % step == 0
    expected_roles = {"vocal": {Role.PROMPT_VOCAL}, "inst": {Role.PROMPT_INST}, "mixture": {Role.PROMPT_MIX}}
    assert set(doc.roles[lo:hi].tolist()) == expected_roles.get(mode, {Role.PROMPT_VOCAL, Role.PROMPT_INST})


def test_icl_draws_are_reproducible_per_seed(synth_tokenizer):
    song = make_song((30, 25, 30), msa=[])
    a = seq.build_icl_document(synth_tokenizer, song, "dual", seq.record_rng(1, song.id))
    b = seq.build_icl_document(synth_tokenizer, song, "dual", seq.record_rng(1, song.id))
    c = seq.build_icl_document(synth_tokenizer, song, "dual", seq.record_rng(2, song.id))
    assert np.array_equal(a.input_ids, b.input_ids)
    assert a.meta["prompt_start"] != c.meta["prompt_start"] or a.meta["prompt_tokens"] != c.meta["prompt_tokens"]


def test_icl_prompt_length_distribution():
    rng = np.random.default_rng(0)
    secs = np.array([seq.draw_prompt_seconds(rng) for _ in range(4000)])
    assert secs.min() >= 20 and secs.max() <= 40
    # The official inverse-transform sampler (np.interp over the 100-point CDF) sits half a grid step
    # (0.1 s) below the mean of 30; we reproduce it, bias included.
    assert abs(secs.mean() - 29.9) < 0.1
    assert abs(secs.var() - 3) < 0.4  # normal with variance 3, almost untouched by the [20, 40] bounds


def test_icl_prefers_a_chorus_that_fits(synth_tokenizer):
    # a 50 s chorus between 40 s and 90 s: every draw must land inside it
    song = make_song((40, 50, 30), ("verse", "chorus", "outro"))
    for seed in range(20):
        _, _, where = seq.draw_icl_prompt(song, "vocal", seq.record_rng(seed, "x"))
        assert where.from_chorus
        assert where.start >= 40 * 50 and where.start + where.length <= 90 * 50


def test_icl_chorus_too_short_falls_back_to_anywhere(synth_tokenizer):
    song = make_song((40, 10, 40), ("verse", "chorus", "outro"))  # 10 s chorus < 20 s prompt
    starts = {seq.draw_icl_prompt(song, "vocal", seq.record_rng(s, "x"))[2].start for s in range(20)}
    assert any(s < 40 * 50 for s in starts)  # drawn outside the chorus


def test_icl_prompt_cut_to_half_a_short_span(synth_tokenizer):
    song = make_song((8, 8), ("verse", "chorus"), msa=[])  # 16 s of lyrics < 20 s minimum
    _, _, where = seq.draw_icl_prompt(song, "dual", seq.record_rng(0, "x"))
    assert where.length == 16 * 50 * 2 // 2


def test_icl_low_variety_prompt_is_redrawn(synth_tokenizer):
    song = make_song((30, 30), ("verse", "outro"), msa=[])
    song.vocals[0, : 30 * 50] = 7  # the first 30 s are one repeated code
    song.vocals[0, 30 * 50 :] = np.arange(30 * 50) % 1024
    redrawn = [seq.draw_icl_prompt(song, "vocal", seq.record_rng(s, "x"))[2] for s in range(30)]
    for where in redrawn:
        prompt = song.vocals[0, where.start : where.start + where.length]
        if where.redraws < seq.ICL_MAX_REDRAWS:
            assert len(np.unique(prompt)) >= 0.1 * where.length
    assert any(w.redraws > 0 for w in redrawn)


def test_icl_mixture_needs_mixture_codes(synth_tokenizer):
    song = make_song(with_mixture=False)
    with pytest.raises(seq.SequenceError, match="'codec'"):
        seq.build_icl_document(synth_tokenizer, song, "mixture", seq.record_rng(0, "x"))
    with pytest.raises(seq.SequenceError, match="unknown ICL prompt mode"):
        seq.draw_icl_prompt(song, "both", seq.record_rng(0, "x"))


# ------------------------------------------------------------------------------------------- stage 2


def test_stage2_document_by_hand():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 1024, size=(12, 3 * 300 + 120))  # 3 whole chunks + a partial one
    codes[0, 300:600] = np.arange(300) % 24  # chunk 1: only 24 distinct codebook-0 codes -> skipped
    doc = seq.build_stage2_document(codes, "s")
    ids = doc.input_ids
    per_chunk = 2 + 300 + 1 + 8 * 300 + 1
    assert len(ids) == 2 * per_chunk + 1
    assert doc.meta["chunks_used"] == 2 and doc.meta["chunks_skipped"] == 1
    for n, c in enumerate((0, 2)):  # chunk 0 and chunk 2 (the trailing 120 frames are dropped)
        block = ids[n * per_chunk : (n + 1) * per_chunk]
        frames = codes[:8, c * 300 : (c + 1) * 300]
        assert block[:2].tolist() == [32001, 32013]
        assert block[2:302].tolist() == (45334 + frames[0]).tolist()
        assert block[302] == 32017
        assert block[303:311].tolist() == [45334 + 1024 * k + frames[k, 0] for k in range(8)]  # frame 0
        assert block[-9:-1].tolist() == [45334 + 1024 * k + frames[k, -1] for k in range(8)]  # last frame
        assert block[-1] == 32002
    assert ids[-1] == 32000
    roles = doc.roles[303:311]
    assert roles.tolist() == [Role.S2_CB0 + k for k in range(8)]
    assert set(doc.roles[2:302].tolist()) == {Role.S2_CONDITION}


def test_stage2_rejects_unusable_codes():
    with pytest.raises(seq.SequenceError, match=">= 8 codebooks"):
        seq.build_stage2_document(np.zeros((1, 600), dtype=int), "s")
    with pytest.raises(seq.SequenceError, match="no 6-second chunk"):
        seq.build_stage2_document(np.zeros((8, 299), dtype=int), "s")


# ------------------------------------------------------------------------------------------- generation prompts


def test_split_lyrics_sections():
    lyrics = "[verse]\n  line one\nline two \n\n[chorus]\nhey\n[outro]"
    assert seq.split_lyrics(lyrics) == ["[verse]\nline one\nline two\n\n", "[chorus]\nhey\n\n", "[outro]\n\n\n"]
    assert seq.split_lyrics("no labels at all") == []


def test_generation_prompts_call_by_call(real_tokenizer):
    tok = real_tokenizer
    sections = seq.split_lyrics("[verse]\nhello\n[chorus]\nworld\n")
    first = seq.first_section_prompt(tok, "pop", sections).ids.tolist()
    header = "Generate music from the given lyrics segment by segment.\n[Genre] pop\n" + "\n".join(sections)
    assert first == tok.encode(header) + tok.encode("[start_of_segment]") + tok.encode(sections[0]) + [32001, 32016]
    nxt = seq.next_section_prompt(tok, sections[1]).ids.tolist()
    assert nxt == tok.encode("[end_of_segment]") + tok.encode("[start_of_segment]") + tok.encode(sections[1]) + [
        32001,
        32016,
    ]
    # one call over the joined text would give other ids: the call boundaries are part of the format
    assert nxt[:-2] != tok.encode("[end_of_segment][start_of_segment]" + sections[1])


def test_generation_prompt_with_reference(synth_tokenizer):
    tok = synth_tokenizer
    rng = np.random.default_rng(0)
    v, i = rng.integers(0, 1024, (1, 3000)), rng.integers(0, 1024, (1, 3000))
    ref_ids, ref_roles = seq.reference_ids_from_codes(1.0, 3.5, vocal_codes=v, inst_codes=i)
    assert len(ref_ids) == 250  # dual: 100 tokens/s
    assert ref_ids[:2].tolist() == [45334 + v[0, 50], 45334 + i[0, 50]]
    single, _ = seq.reference_ids_from_codes(1.0, 3.5, codes=v)
    assert single.tolist() == (45334 + v[0, 50:175]).tolist()  # single: 50 tokens/s
    sections = seq.split_lyrics("[verse]\nhello\n")
    first = seq.first_section_prompt(tok, "pop", sections, (ref_ids, ref_roles)).ids.tolist()
    header = tok.encode("Generate music from the given lyrics segment by segment.\n[Genre] pop\n" + sections[0])
    block = tok.encode("[start_of_reference]") + [32001, 32016] + ref_ids.tolist() + [32002]
    block += tok.encode("[end_of_reference]")
    assert first == header + block + tok.encode("[start_of_segment]") + tok.encode(sections[0]) + [32001, 32016]
    with pytest.raises(seq.SequenceError, match="reference is 60.00 s long"):
        seq.reference_ids_from_codes(50, 70, codes=v)
    with pytest.raises(seq.SequenceError, match="no \\[label\\] section"):
        seq.first_section_prompt(tok, "pop", [])
