"""`yue-infer generate` end to end on tiny random models (codes only; audio comes with the codec tests)."""

import json

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from inference.cli import main as infer_main
from tests.conftest import fixture_file
from tests.tiny_models import tiny_llama, wrong_vocab_llama_config
from yue_train.generation.loading import load_lm
from yue_train.generation.stage2 import generate_stage2


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    import torch

    tiny_llama(seed=0, dtype=torch.float32).save_pretrained(root / "s1")
    tiny_llama(seed=1, dtype=torch.float32).save_pretrained(root / "s2")
    LlamaForCausalLM(wrong_vocab_llama_config()).save_pretrained(root / "small_vocab")
    return root


def _inputs(tmp_path, lyrics="[verse]\nla la\n\n[chorus]\nna na\n\n[outro]\nbye\n", genre="pop female bright"):
    (tmp_path / "genre.txt").write_text(genre)
    (tmp_path / "lyrics.txt").write_text(lyrics)
    return ["--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt")]


def _base(tmp_path, model_dirs, out="out"):
    return [
        "generate", *_inputs(tmp_path), "--stage1-model", str(model_dirs / "s1"), "--stage2-model", str(model_dirs / "s2"),
        "--out", str(tmp_path / out), "--max-new-tokens", "24", "--min-new-tokens", "20", "--no-progress", "--device", "cpu",
    ]  # fmt: skip


@pytest.mark.slow
def test_generate_two_sections_and_continue(tmp_path, model_dirs):
    assert infer_main([*_base(tmp_path, model_dirs), "--n-sections", "2"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (song,) = report["songs"]
    assert len(song["sections"]) == 2
    song_dir = tmp_path / "out" / "song00"
    vocal, inst = np.load(song_dir / "stage1_vocal.npy"), np.load(song_dir / "stage1_inst.npy")
    v8, i8 = np.load(song_dir / "stage2_vocal.npy"), np.load(song_dir / "stage2_inst.npy")
    assert v8.shape == (8, vocal.shape[1]) and i8.shape == (8, inst.shape[1])
    assert np.array_equal(v8[0], vocal[0]) and np.array_equal(i8[0], inst[0])  # stage 2 keeps codebook 0
    assert vocal.shape[1] == song["frames"] > 0
    # The song the user keeps: codebooks 1-7 set to codes the model would not write, to see they survive.
    kept = {}
    for name, codes in (("vocal", v8), ("inst", i8)):
        codes[1:] = (np.arange(codes[1:].size).reshape(codes[1:].shape) * 7 + 3) % 1024
        np.save(song_dir / f"stage2_{name}.npy", codes)
        kept[name] = codes
    # continuation: one more section appended to that song
    cont = [*_base(tmp_path, model_dirs, out="more"), "--continue-from", str(song_dir), "--n-sections", "1"]
    (tmp_path / "lyrics.txt").write_text("[bridge]\nhigher\n")
    assert infer_main(cont) == 0
    more = tmp_path / "more" / "song00"
    ids_before, ids_after = np.load(song_dir / "stage1_ids.npy"), np.load(more / "stage1_ids.npy")
    assert np.array_equal(ids_after[: len(ids_before)], ids_before)
    old = vocal.shape[1]
    for name in ("vocal", "inst"):
        s1, s8 = np.load(more / f"stage1_{name}.npy"), np.load(more / f"stage2_{name}.npy")
        assert s1.shape[1] > old and s8.shape == (8, s1.shape[1])
        assert np.array_equal(s1[:, :old], np.load(song_dir / f"stage1_{name}.npy"))
        assert np.array_equal(s8[:, :old], kept[name])  # all 8 codebooks of the kept frames, bit for bit
        assert np.array_equal(s8[0], s1[0])
        # the new frames are stage 2 of the new frames alone, chunked from where the kept part ends
        (fresh,) = generate_stage2(load_lm(str(model_dirs / "s2"), torch.device("cpu")), [s1[0, old:]], progress=False)
        assert np.array_equal(s8[:, old:], fresh)
    (song,) = json.loads((tmp_path / "more" / "report.json").read_text())["songs"]
    assert song["new_frames"] == song["frames"] - old > 0
    # --overwrite replaces the continued song with a fresh one; files yue-infer did not write stay
    (tmp_path / "more" / "notes.txt").write_text("mine")
    assert infer_main([*_base(tmp_path, model_dirs, out="more"), "--n-sections", "1", "--overwrite"]) == 0
    (song,) = json.loads((tmp_path / "more" / "report.json").read_text())["songs"]
    assert (
        len(song["sections"]) == 1
        and song["new_frames"] == song["frames"] == np.load(more / "stage2_vocal.npy").shape[1]
    )
    assert (tmp_path / "more" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("case,message", [
    ("no-sections", "no [label] section"),
    ("empty-genre", "genre file"),
    ("missing-codec", "not a converted codec folder"),
    ("stage2-vocab", "needs at least 53,526"),
    ("ref-beyond", "reference is 10.00 s long"),
    ("audio-ref-without-codec", "needs --codec"),
    ("context-too-long", "exceeds the stage-1 model's 4,096-token window"),
    ("window-from-config", "exceeds the stage-1 model's 4,096-token window"),
    ("missing-stage1", "--stage1-model: no such folder"),
    ("missing-stage2", "--stage2-model: no such folder"),
    ("stage1-is-file", "not a folder"),
    ("missing-adapter", "--adapter: no such folder"),
    ("not-an-adapter", "not a LoRA adapter folder (no adapter_config.json)"),
    ("continue-missing", "missing stage1_ids.npy"),
    ("continue-mismatch", "stage2_vocal.npy does not extend stage1_vocal.npy"),
])  # fmt: skip
def test_generate_bad_input_fails_before_models_load(tmp_path, model_dirs, capsys, case, message):
    args = _base(tmp_path, model_dirs)
    if case == "no-sections":
        args[1:5] = _inputs(tmp_path, lyrics="just words")
    elif case == "empty-genre":
        args[1:5] = _inputs(tmp_path, genre=" \n")
    elif case == "missing-codec":
        args += ["--codec", str(tmp_path / "nowhere")]
    elif case == "stage2-vocab":
        args[args.index("--stage2-model") + 1] = str(model_dirs / "small_vocab")
    elif case == "ref-beyond":
        np.save(tmp_path / "ref.npy", np.zeros((1, 500), dtype=np.int64))
        args += ["--ref-codes", str(tmp_path / "ref.npy"), "--ref-start", "5", "--ref-end", "20"]
    elif case == "context-too-long":  # 40 s of dual reference + 13,000 new tokens do not fit
        np.save(tmp_path / "v.npy", np.zeros((1, 2500), dtype=np.int64))
        args += ["--ref-vocal-codes", str(tmp_path / "v.npy"), "--ref-inst-codes", str(tmp_path / "v.npy"),
                 "--ref-end", "40", "--max-new-tokens", "13000"]  # fmt: skip
    elif case == "window-from-config":  # fits the released 16,384 tokens, not the tiny model's 4,096
        args[args.index("--max-new-tokens") + 1] = "4090"
    elif case == "audio-ref-without-codec":
        args += ["--ref-audio", str(tmp_path / "song.mp3")]
    elif case in ("missing-stage1", "missing-stage2"):
        args[args.index(f"--{case[8:]}-model") + 1] = str(tmp_path / "local" / "model")
    elif case == "stage1-is-file":
        args[args.index("--stage1-model") + 1] = str(tmp_path / "lyrics.txt")
    elif case == "missing-adapter":
        args += ["--adapter", str(tmp_path / "runs" / "lora" / "adapter")]
    elif case == "not-an-adapter":
        args += ["--adapter", str(model_dirs / "s1")]
    elif case.startswith("continue-"):
        song = tmp_path / "old" / "song00"
        song.mkdir(parents=True)
        if case == "continue-mismatch":
            for name in ("ids", "vocal", "inst"):
                np.save(song / f"stage1_{name}.npy", np.ones((1, 5), dtype=np.int16))
            for name in ("vocal", "inst"):
                np.save(song / f"stage2_{name}.npy", np.zeros((8, 5), dtype=np.int16))
        args += ["--continue-from", str(song)]
    assert infer_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("yue-infer generate: error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_used_out_folder(tmp_path, model_dirs, capsys):
    earlier = tmp_path / "out" / "song00"
    earlier.mkdir(parents=True)
    np.save(earlier / "stage1_ids.npy", np.arange(3))
    assert infer_main(_base(tmp_path, model_dirs)) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-infer generate: error: --out") and "pass --overwrite or a new folder" in err
    assert err.count("\n") == 1
    assert np.array_equal(np.load(earlier / "stage1_ids.npy"), np.arange(3))  # the earlier song is untouched


@pytest.mark.slow
def test_generate_with_codec_writes_stems_and_mixes(tmp_path, model_dirs, codec_with_upsamplers):
    """Two sections, decoded: stem and mix lengths follow the generated frame counts."""
    import soundfile as sf

    eg = fixture_file("yue", "prompt_egs")
    args = [*_base(tmp_path, model_dirs), "--n-sections", "2", "--codec", str(codec_with_upsamplers)]
    args[1:5] = ["--genre-txt", str(eg / "genre.txt"), "--lyrics-txt", str(eg / "lyrics.txt")]
    assert infer_main(args) == 0
    (song,) = json.loads((tmp_path / "out" / "report.json").read_text())["songs"]
    frames = song["frames"]
    for name, per_frame, rate in [("vocal_16k", 320, 16000), ("inst_16k", 320, 16000), ("mix_16k", 320, 16000),
                                  ("vocal_44k", 882, 44100), ("mix_44k", 882, 44100), ("final", 882, 44100)]:  # fmt: skip
        info = sf.info(song["audio"][name])
        assert info.samplerate == rate and info.frames == per_frame * frames, name


@pytest.mark.slow
def test_generate_icl_with_reference_mp3s(tmp_path, model_dirs, codec_with_upsamplers):
    eg = fixture_file("yue", "prompt_egs")
    args = [*_base(tmp_path, model_dirs), "--n-sections", "1", "--codec", str(codec_with_upsamplers),
            "--ref-vocal-audio", str(eg / "pop.00001.Vocals.mp3"), "--ref-inst-audio", str(eg / "pop.00001.Instrumental.mp3"),
            "--ref-start", "2", "--ref-end", "6"]  # fmt: skip
    assert infer_main(args) == 0
    song_dir = tmp_path / "out" / "song00"
    ids = np.load(song_dir / "stage1_ids.npy")
    blocks = np.flatnonzero(ids == 32001)
    assert len(blocks) == 2  # the reference block, then the generated section
    ref_len = int(np.flatnonzero(ids == 32002)[0] - blocks[0] - 2)
    assert ref_len == 400  # 4 s of dual reference at 100 tokens/s
    vocal = np.load(song_dir / "stage1_vocal.npy")
    assert vocal.shape[1] == json.loads((tmp_path / "out" / "report.json").read_text())["songs"][0]["frames"]


def test_prompt_with_audio_reference(tmp_path, capsys, codec_with_upsamplers):
    eg = fixture_file("yue", "prompt_egs")
    args = ["prompt", *_inputs(tmp_path), "--codec", str(codec_with_upsamplers), "--ref-audio", str(eg / "pop.00001.mp3"),
            "--ref-start", "1", "--ref-end", "3.5", "--ids"]  # fmt: skip
    assert infer_main(args) == 0
    first = json.loads(capsys.readouterr().out)["first"]
    assert sum(45334 <= t < 46358 for t in first) == 125  # 2.5 s of single-track reference at 50 tokens/s
    assert infer_main(["prompt", *_inputs(tmp_path), "--ref-audio", str(eg / "pop.00001.mp3")]) == 2
    assert "needs --codec" in capsys.readouterr().err


def test_generate_static_cache_and_threads_flags(tmp_path, model_dirs, capsys):
    """--static-cache writes the songs the dynamic cache writes (greedy); --threads sets torch's threads and a
    bad count is one line."""
    threads = torch.get_num_threads()
    try:
        assert infer_main([*_base(tmp_path, model_dirs, out="dynamic"), "--greedy"]) == 0
        static = [*_base(tmp_path, model_dirs, out="static"), "--greedy", "--static-cache", "--threads", "1"]
        assert infer_main(static) == 0
        assert torch.get_num_threads() == 1
        for name in ("stage1_ids.npy", "stage2_vocal.npy", "stage2_inst.npy"):
            dynamic, cached = (np.load(tmp_path / out / "song00" / name) for out in ("dynamic", "static"))
            assert np.array_equal(dynamic, cached), name
        capsys.readouterr()
        assert infer_main([*_base(tmp_path, model_dirs, out="bad"), "--threads", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "yue-infer generate: error: --threads must be >= 1, got 0"
    finally:
        torch.set_num_threads(threads)
