"""Fast generation equals slow reference generation under greedy decoding."""

import numpy as np
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from tests.tiny_models import tiny_llama
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format import vocab
from yue_train.format.parsing import parse_stage1_output
from yue_train.generation.sampling import SamplingConfig, apply_repetition_penalty, top_p_filter
from yue_train.generation.stage1 import context_window, generate_section, generate_stage1, window
from yue_train.generation.stage2 import chunk_prompt, chunk_spans, generate_stage2, generate_stage2_naive


class _BlockBelow(LogitsProcessor):
    """The released inference's BlockTokenRangeProcessor(0, 32002)."""

    def __call__(self, input_ids, scores):
        scores[:, : vocab.MIN_SAMPLED_ID] = -float("inf")
        return scores


@pytest.mark.slow
@pytest.mark.parametrize("guidance", [1.5, 1.0])
def test_stage1_cached_cfg_matches_hf_generate(synth_tokenizer, guidance):
    """Our batched-CFG, single-cache decoding = Hugging Face generate with the released settings (greedy)."""
    model = tiny_llama()
    prompt = seq.first_section_prompt(synth_tokenizer, "pop female", seq.split_lyrics("[verse]\nla la\n")).ids
    context = torch.as_tensor(prompt, dtype=torch.long)
    cfg = SamplingConfig(greedy=True, max_new_tokens=200, min_new_tokens=100, audio_ids_only=False)
    ours = generate_section(model, context, cfg, guidance)
    ref = model.generate(
        input_ids=context[None],
        attention_mask=torch.ones(1, len(context), dtype=torch.long),
        max_new_tokens=200,
        min_new_tokens=100,
        do_sample=False,
        repetition_penalty=1.1,
        guidance_scale=guidance,
        eos_token_id=vocab.EOA,
        pad_token_id=vocab.EOA,
        logits_processor=LogitsProcessorList([_BlockBelow()]),
    )[0, len(context) :]
    if ref[-1] != vocab.EOA:
        ref = torch.cat([ref, torch.tensor([vocab.EOA])])
    assert len(ours) > 100
    assert ours.tolist() == ref.tolist()


def _uncached_stage1(model, context, cfg, guidance):
    """Reference without any KV cache: every step re-runs the conditional sequence and the unconditional
    one (the last prompt token plus what was generated) from scratch."""
    from yue_train.generation.sampling import stage1_next_token

    cond, uncond, out = context[None], context[None, -1:], []
    for step in range(cfg.max_new_tokens):
        with torch.no_grad():
            lc = model(input_ids=cond, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            lu = model(input_ids=uncond, use_cache=False, logits_to_keep=1).logits[:, -1].float()
        token = stage1_next_token(lc, lu if guidance != 1 else None, cond, step, cfg, guidance, None)
        out.append(int(token))
        if out[-1] == vocab.EOA:
            break
        cond = torch.cat([cond, token[None]], dim=1)
        uncond = torch.cat([uncond, token[None]], dim=1)
    return out


@pytest.mark.slow
def test_stage1_cached_cfg_matches_uncached_reference(synth_tokenizer):
    model = tiny_llama(seed=3)
    prompt = seq.first_section_prompt(synth_tokenizer, "rock male", seq.split_lyrics("[chorus]\nhey\n")).ids
    context = torch.as_tensor(prompt, dtype=torch.long)
    cfg = SamplingConfig(greedy=True, max_new_tokens=200, min_new_tokens=200)
    ours = generate_section(model, context, cfg, 1.5).tolist()
    assert ours[:200] == _uncached_stage1(model, context, cfg, 1.5)[:200]


def test_stage1_song_structure_and_parse(synth_tokenizer):
    model = tiny_llama(dtype=torch.float32)
    sections = seq.split_lyrics("[verse]\nla\n[chorus]\nna\n")
    first = seq.first_section_prompt(synth_tokenizer, "pop", sections)
    nxt = [seq.next_section_prompt(synth_tokenizer, s) for s in sections[1:]]
    cfg = SamplingConfig(max_new_tokens=16, min_new_tokens=4)
    a = generate_stage1(model, first, nxt, cfg, seed=3, progress=False)
    b = generate_stage1(model, first, nxt, cfg, seed=3, progress=False)
    c = generate_stage1(model, first, nxt, cfg, seed=4, progress=False)
    assert np.array_equal(a.ids, b.ids)  # seeded sampling is reproducible
    assert not np.array_equal(a.ids, c.ids)
    assert [s.prompt_tokens for s in a.sections] == [len(first), len(first) + a.sections[0].new_tokens + len(nxt[0])]
    assert all(s.new_tokens <= 17 for s in a.sections)
    # the sequence is: first prompt, section 1, next prompt, section 2; each section ends in <EOA>
    n1 = a.sections[0].new_tokens
    section1 = a.ids[len(first) : len(first) + n1]
    section2 = a.ids[len(first) + n1 + len(nxt[0]) :]
    assert np.array_equal(a.ids[: len(first)], first.ids)
    assert np.array_equal(a.ids[len(first) + n1 : len(first) + n1 + len(nxt[0])], nxt[0].ids)
    for section in (section1, section2):
        assert section[-1] == vocab.EOA and (section == vocab.EOA).sum() == 1
        audio = section[:-1]  # by default only codebook-0 ids (and the closing <EOA>) are sampled
        assert audio.min() >= 45334 and audio.max() < 46358
    loose = generate_stage1(
        model, first, nxt, SamplingConfig(max_new_tokens=16, min_new_tokens=16, audio_ids_only=False), progress=False
    )
    assert loose.ids[len(first) :].max() >= 46358  # the released rule lets a random model leave codebook 0


def test_window_rule():
    ids = torch.arange(20)
    kept, truncated = window(ids, max_new_tokens=5, model_window=16)
    assert truncated and kept.tolist() == list(range(10, 20))  # 16 - 5 - 1 = 10 tokens kept
    kept, truncated = window(ids, max_new_tokens=3, model_window=40)
    assert not truncated and torch.equal(kept, ids)


def test_sampling_pieces_match_hf():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor, TopPLogitsWarper

    torch.manual_seed(0)
    scores = torch.randn(3, 50)
    ctx = torch.randint(0, 50, (3, 12))
    hf = RepetitionPenaltyLogitsProcessor(1.1)(ctx, scores.clone())
    assert torch.equal(apply_repetition_penalty(scores.clone(), ctx, 1.1), hf)
    assert torch.equal(top_p_filter(scores.clone(), 0.93), TopPLogitsWarper(0.93)(ctx, scores.clone()))


@pytest.mark.slow
def test_stage2_batched_cache_matches_naive_loop():
    model = tiny_llama(seed=1)
    rng = np.random.default_rng(0)
    tracks = [rng.integers(0, 1024, 30), rng.integers(0, 1024, 23)]  # chunks of 12: 12+12+6, 12+11
    fast = generate_stage2(model, tracks, batch_size=3, chunk_frames=12, progress=False)
    for track, codes in zip(tracks, fast, strict=True):
        assert codes.shape == (8, len(track))
        assert np.array_equal(codes[0], track)
        for s, e in chunk_spans(len(track), 12):
            assert np.array_equal(codes[:, s:e], generate_stage2_naive(model, track[s:e]))


def test_stage2_output_is_codebook_correct():
    model = tiny_llama(seed=2, dtype=torch.float32)
    cb0 = np.arange(10) * 7
    (codes,) = generate_stage2(model, [cb0], chunk_frames=300, progress=False)
    assert codes.shape == (8, 10) and codes.min() >= 0 and codes.max() < 1024
    # the codes round-trip through a stage-2 document of the format
    ids = seq.stage2_chunk_prompt(45334 + cb0).ids
    assert ids[0] == vocab.SOA and ids[-1] == vocab.STAGE_2


def test_stage2_chunk_prompt_is_the_training_document_prefix():
    codes = np.random.default_rng(1).integers(0, 1024, (8, 2 * seq.STAGE2_CHUNK_FRAMES))
    doc = seq.build_stage2_document(codes, "song")
    n = seq.STAGE2_CHUNK_FRAMES
    second = len(chunk_prompt(codes[0, :n])) + 8 * n + 1  # the second chunk starts after frames and <EOA>
    for start, at in ((0, 0), (n, second)):
        prompt = chunk_prompt(codes[0, start : start + n])
        assert np.array_equal(doc.input_ids[at : at + len(prompt)], prompt)


@pytest.mark.slow
def test_stage2_generation_feeds_the_training_document():
    """What stage 2 feeds the model is the stage-2 training document of the codes it writes: the chunk
    prompt, then frame after frame of 8 codebooks."""
    model = tiny_llama(seed=2, dtype=torch.float32)
    cb0 = np.random.default_rng(1).integers(0, 1024, seq.STAGE2_CHUNK_FRAMES)
    fed = []
    model.register_forward_pre_hook(lambda m, args, kwargs: fed.append(kwargs["input_ids"][0]), with_kwargs=True)
    (codes,) = generate_stage2(model, [cb0], progress=False)  # one chunk of the format's length
    doc = seq.build_stage2_document(codes, "song")
    assert np.array_equal(fed[0].numpy(), chunk_prompt(cb0))  # prefilled once
    # all that is fed: the document up to the last frame's codebook-7 id (taken, never fed), <EOA>, <EOD>
    assert np.array_equal(torch.cat(fed).numpy(), doc.input_ids[:-3])


def test_stage1_window_comes_from_the_model_config(synth_tokenizer):
    model = tiny_llama(dtype=torch.float32)
    assert context_window(model) == 4096
    sections = seq.split_lyrics("[verse]\nla\n[chorus]\nna\n")
    first = seq.first_section_prompt(synth_tokenizer, "pop", sections)
    cfg = SamplingConfig(max_new_tokens=16, min_new_tokens=16)
    model.config.max_position_embeddings = len(first) + 16 + 1  # the first section just fits
    res = generate_stage1(model, first, [seq.next_section_prompt(synth_tokenizer, sections[1])], cfg, progress=False)
    assert [s.truncated_context for s in res.sections] == [False, True]
    assert res.sections[1].prompt_tokens == len(first)


def test_parse_of_generated_stage1(synth_tokenizer):
    model = tiny_llama(dtype=torch.float32)
    first = seq.first_section_prompt(synth_tokenizer, "pop", seq.split_lyrics("[verse]\nla\n"))
    res = generate_stage1(model, first, [], SamplingConfig(max_new_tokens=12, min_new_tokens=12), progress=False)
    vocal, inst = parse_stage1_output(res.ids)
    assert vocal.shape == inst.shape == (1, 6)  # 12 audio tokens = 6 dual frames


def _reference_probabilities(cond, uncond, context, step, cfg, guidance):
    """The full-vocabulary pipeline of stage1_next_token, up to the probabilities it samples from."""
    from yue_train.generation.sampling import apply_repetition_penalty, guided_scores

    scores = apply_repetition_penalty(guided_scores(cond, uncond, guidance), context, cfg.repetition_penalty)
    if step < cfg.min_new_tokens:
        scores[:, vocab.EOA] = float("-inf")
    scores[:, : vocab.MIN_SAMPLED_ID] = float("-inf")
    if cfg.audio_ids_only:
        lo, hi = cl.codebook_range(0)
        scores[:, vocab.EOA + 1 : lo] = float("-inf")
        scores[:, hi:] = float("-inf")
    return scores, top_p_filter(scores / cfg.temperature, cfg.top_p).softmax(dim=-1)


@pytest.mark.parametrize("audio_only", [True, False])
@pytest.mark.parametrize("guidance", [1.5, 1.0])
def test_allowed_id_sampler_has_the_reference_distribution_and_greedy_pick(audio_only, guidance):
    """Over the allowed ids only: the same probabilities as the full-vocabulary pipeline (zero mass left
    outside), the same greedy pick, with the repetition penalty, the <EOA> block and top-p in play."""
    from yue_train.generation.sampling import Stage1Sampler, stage1_next_token

    gen = torch.Generator().manual_seed(0)
    lo, _ = cl.codebook_range(0)
    for step in (0, 150):
        cfg = SamplingConfig(top_p=0.9, temperature=0.8, audio_ids_only=audio_only, min_new_tokens=100)
        context = torch.cat([torch.randint(0, 32000, (50,), generator=gen), lo + torch.arange(0, 300, 3)])
        cond = torch.randn(1, vocab.MODEL_VOCAB_SIZE, generator=gen, dtype=torch.float64)
        uncond = torch.randn(1, vocab.MODEL_VOCAB_SIZE, generator=gen, dtype=torch.float64)
        cond[0, vocab.EOA] = 9.0  # <EOA> would win were it not blocked
        cond[0, lo : lo + 300 : 3] += 3  # ids already in the context: the penalty matters
        u = uncond if guidance != 1 else None
        sampler = Stage1Sampler(vocab.MODEL_VOCAB_SIZE, cfg, context)
        ref_scores, ref_probs = _reference_probabilities(cond, u, context[None], step, cfg, guidance)
        probs = sampler.probabilities(sampler.scores(cond, u, step, guidance))
        full = torch.zeros_like(ref_probs).index_copy_(1, sampler.allowed, probs)
        torch.testing.assert_close(full, ref_probs, rtol=1e-12, atol=1e-15)
        assert bool(ref_probs[0, vocab.EOA] > 0) == (step >= 100)
        assert step >= 100 or (ref_probs > 0).sum() > 3  # a real choice among several ids
        greedy = SamplingConfig(audio_ids_only=audio_only, greedy=True, min_new_tokens=100)
        pick = Stage1Sampler(vocab.MODEL_VOCAB_SIZE, greedy, context).next_token(cond, u, step, guidance, None)
        assert pick.tolist() == stage1_next_token(cond, u, context[None], step, greedy, guidance, None).tolist()


def test_allowed_id_sampler_penalises_what_it_emitted():
    from yue_train.generation.sampling import Stage1Sampler

    lo, _ = cl.codebook_range(0)
    cfg = SamplingConfig(greedy=True, min_new_tokens=0, repetition_penalty=2.0)
    sampler = Stage1Sampler(vocab.MODEL_VOCAB_SIZE, cfg, torch.tensor([5, 6]))
    logits = torch.zeros(1, vocab.MODEL_VOCAB_SIZE)
    logits[0, lo + 7], logits[0, lo + 8] = 10.0, 6.0
    assert sampler.next_token(logits, None, 0, 1.0, None).item() == lo + 7
    assert sampler.next_token(logits, None, 1, 1.0, None).item() == lo + 8  # 10 / 2 < 6 now


def test_sparse_eoa_checks_give_the_same_section():
    """Checking for <EOA> every 4 steps (as on CUDA) ends the section at the same <EOA> as every step."""
    model = tiny_llama(dtype=torch.float32)
    head = torch.nn.Linear(32, vocab.MODEL_VOCAB_SIZE, bias=True)
    with torch.no_grad():  # the same head plus a bias under which <EOA> wins once min_new_tokens allows it
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()[vocab.EOA] = 1e4
    model.lm_head = head
    context = torch.as_tensor(np.r_[np.arange(100, 130), vocab.SOA, vocab.XCODEC])
    every = SamplingConfig(greedy=True, min_new_tokens=5, max_new_tokens=40, eoa_check_every=1)
    sparse = SamplingConfig(greedy=True, min_new_tokens=5, max_new_tokens=40, eoa_check_every=4)
    a = generate_section(model, context, every, 1.5)
    b = generate_section(model, context, sparse, 1.5)
    assert a.tolist() == b.tolist() and len(a) == 6 and a[-1] == vocab.EOA and (a == vocab.EOA).sum() == 1


@pytest.mark.parametrize("guidance", [1.5, 1.0])
def test_static_cache_section_equals_the_dynamic_cache_one(guidance):
    """The fixed-shape path (static KV cache, full-length mask filled in place) decodes the same tokens."""
    model = tiny_llama(dtype=torch.float32)
    context = torch.as_tensor(np.r_[np.arange(200, 260), vocab.SOA, vocab.XCODEC])
    dynamic = SamplingConfig(greedy=True, max_new_tokens=40, min_new_tokens=40)
    static = SamplingConfig(greedy=True, max_new_tokens=40, min_new_tokens=40, static_cache=True)
    a = generate_section(model, context, dynamic, guidance)
    b = generate_section(model, context, static, guidance)
    assert len(a) == 41 and a.tolist() == b.tolist()
