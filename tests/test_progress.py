"""The long steps' progress bars move per unit of work: stage 1 per token, stage 2 per frame step of its
chunks, codec encoding per window. Each test runs the real loop on a tiny model over several units and reads
what the bar drew (told to draw on every update) or what the loop reported to its callback."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_llama
from yue_train.format import sequences as seq
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.stage1 import generate_stage1
from yue_train.generation.stage2 import chunk_spans, generate_chunks, generate_stage2

AUDIO = re.compile(r"(\d+\.\d\d)/(\d+\.\d\d) s of audio")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these models are tiny, and on a shared 2-core machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def every_update(monkeypatch):
    """The bars draw on every update (they draw at most every 0.1 s otherwise)."""
    monkeypatch.setattr("yue_train.progress.DRAW_INTERVAL_S", 0.0)


def _drawn(err: str) -> list[str]:
    return [part for part in err.replace("\n", "\r").split("\r") if part.strip()]


def test_stage2_reports_every_frame_step_of_a_batch():
    model = tiny_llama(seed=2, dtype=torch.float32)
    cb0 = torch.as_tensor(np.random.default_rng(0).integers(0, 1024, (3, 4)))
    calls: list[int] = []
    codes = generate_chunks(model, cb0, calls.append)
    assert calls == [3] * 4  # one call per frame step, one frame per chunk of the batch
    assert torch.equal(codes, generate_chunks(model, cb0))  # the callback changes nothing generated


def test_stage2_bar_moves_through_every_chunk(capsys, every_update):
    """Two tracks in chunks of 4 frames, batches of up to 3 chunks: the bar moves at every frame step of
    every batch (not once per batch) and ends at the tracks' length in seconds of audio (50 frames = 1 s)."""
    model = tiny_llama(seed=1, dtype=torch.float32)
    rng = np.random.default_rng(0)
    tracks = [rng.integers(0, 1024, 10), rng.integers(0, 1024, 7)]  # chunks 4+4+2 and 4+3
    generate_stage2(model, tracks, batch_size=3, chunk_frames=4, progress=True)
    frames = [round(float(m.group(1)) * 50) for m in map(AUDIO.search, _drawn(capsys.readouterr().err)) if m]
    # batches: the three 4-frame chunks, then the 2-frame chunk, then the 3-frame one, a frame step at a time
    moves = [3] * 4 + [1] * 2 + [1] * 3
    assert sorted(set(frames)) == list(np.cumsum([0, *moves]))
    assert frames[-1] == 17 and len(chunk_spans(10, 4)) + len(chunk_spans(7, 4)) == 5


def test_stage1_bar_counts_each_sections_tokens(capsys, every_update, synth_tokenizer):
    model = tiny_llama(seed=0, dtype=torch.float32)
    first = seq.first_section_prompt(synth_tokenizer, "pop", seq.split_lyrics("[verse]\nla la\n"))
    following = [seq.next_section_prompt(synth_tokenizer, "[chorus]\nna na\n")]
    cfg = SamplingConfig(greedy=True, max_new_tokens=12, min_new_tokens=12)
    with_bar = generate_stage1(model, first, following, cfg, progress=True)
    drawn = _drawn(capsys.readouterr().err)
    counts = [int(m.group(1)) for m in (re.search(r"(\d+)token", d) for d in drawn) if m]
    assert counts == sorted(counts) and counts[-1] == 24  # 12 sampled tokens per section, each drawn
    assert len(set(counts)) == 25  # 0..24: the bar moved at every token
    assert any("section 2/2" in d for d in drawn)
    assert np.array_equal(with_bar.ids, generate_stage1(model, first, following, cfg, progress=False).ids)


@pytest.fixture(scope="module")
def codec_folder(tmp_path_factory):
    from yue_train.codec.testing import random_codec

    return random_codec(tmp_path_factory.mktemp("codec"))


@pytest.fixture(scope="module")
def codec(codec_folder):
    from yue_train.codec.model import ChunkPlan, YueCodec

    codec = YueCodec.from_folder(codec_folder, device="cpu")
    codec.chunk = ChunkPlan(chunk_frames=20, context_frames=4)  # windows of 0.4 s: several per wave
    return codec


def test_encoding_reports_every_window(codec):
    rng = np.random.default_rng(0)
    waves = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 11000)]  # 50 and 34 frames
    windows = [codec.chunk.windows(codec.n_frames(len(w))) for w in waves]
    calls: list[int] = []
    codes = codec.encode_many(waves, n_codebooks=8, batch_size=1, advance=calls.append)
    kept = [k1 - k0 for ws in windows for _w0, _w1, k0, k1 in ws]
    assert len(kept) == 5 and sorted(calls) == sorted(kept)  # one call per window, with the frames it gave
    assert sum(calls) == sum(c.shape[1] for c in codes)
    again = codec.encode_many(waves, n_codebooks=8, batch_size=1)
    assert all(np.array_equal(a, b) for a, b in zip(codes, again, strict=True))


def test_a_build_shows_each_songs_encoding_bar(codec, capsys, every_update, tmp_path):
    """``yue-prep build``'s encoding process gives a song a bar that moves per window and ends at the
    length of its three waves (mix, vocals, instrumental)."""
    from data_prep.build import BuildOptions
    from data_prep.encode_songs import _Worker

    opts = BuildOptions(input=tmp_path, out=tmp_path / "out", codec=tmp_path / "codec", batch_size=1)
    worker = _Worker(opts, "fp", None, "cpu", 1, bar_line=0)
    worker._codec = codec
    wave = (0.3 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    worker.encode([wave, wave, wave], "song-a")
    drawn = [d for d in _drawn(capsys.readouterr().err) if "encode song-a" in d]
    seconds = [float(m.group(1)) for m in map(AUDIO.search, drawn) if m]
    assert seconds[0] == 0.0 and seconds[-1] == 3.0  # 3 waves x 50 frames
    assert len(set(seconds)) == 1 + 3 * 3  # 3 windows (20 + 20 + 10 frames) per wave, one move each


def test_encoding_files_shows_one_bar_over_all_their_audio(codec, capsys, every_update, tmp_path):
    """``yue-prep encode``: the bar's total grows by each file's length as it is read, and the bar moves
    per window (20 frames here) to the sum of the files' lengths."""
    import soundfile as sf

    from yue_train.codec.batch import encode_files, jobs_from_paths

    rng = np.random.default_rng(2)
    paths = []
    for name, n in (("a", 16000), ("b", 8000)):  # 50 and 25 frames: windows of 20+20+10 and 20+5
        paths.append(tmp_path / f"{name}.wav")
        sf.write(paths[-1], (0.3 * rng.standard_normal(n)).astype(np.float32), 16000)
    results = encode_files(codec, jobs_from_paths(paths, tmp_path / "out"), batch_size=1, progress=True)
    assert [r.status for r in results] == ["ok", "ok"]
    drawn = [m.groups() for m in map(AUDIO.search, _drawn(capsys.readouterr().err)) if m]
    assert drawn[-1] == ("1.50", "1.50")
    assert {t for _, t in drawn} == {"0.00", "1.00", "1.50"}  # nothing read yet, then file a, then file b
    assert len({n for n, _ in drawn}) == 1 + 5  # one move per window


def test_quiet_yue_prep_encode_draws_no_bar(codec_folder, capsys, tmp_path):
    import soundfile as sf

    from data_prep.cli import main
    from yue_train.training.output import NORMAL, set_verbosity

    wav = tmp_path / "a.wav"
    sf.write(wav, (0.3 * np.random.default_rng(3).standard_normal(8000)).astype(np.float32), 16000)
    try:
        for flags, out in (([], "drawn"), (["-q"], "quiet")):
            assert main([*flags, "encode", "--codec", str(codec_folder), "--out", str(tmp_path / out), str(wav)]) == 0
            assert ("s of audio" in capsys.readouterr().err) == (out == "drawn")
    finally:
        set_verbosity(NORMAL)
