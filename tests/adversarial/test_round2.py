"""Hostile inputs, second round (the model door is :mod:`tests.adversarial.test_model_door`): files read
outside the folder the user named, allocations sized by a small file, malformed JSON and state files, and
silent wrong results. Every case asserts the one-line message naming the file (or the fallback); the
allocation cases also run in a subprocess under ``RLIMIT_AS``, where an allocation the check missed fails."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from yue_train.evaluation.songs import SongLoadError, load_songs

MEMORY_CAP = 2 << 30  # imports of torch, transformers and peft fit; every planted allocation is larger


# ------------------------------------------------------------------------------------------ report.json
def _wav(path: Path, seconds: float = 0.5) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def _generated(root: Path, report: object | str) -> Path:
    """A yue-infer generate output folder holding one song and ``report`` as its report.json."""
    songs = root / "songs"
    _wav(songs / "song00" / "mix_16k.wav")
    text = report if isinstance(report, str) else json.dumps(report)
    (songs / "report.json").write_text(text)
    return songs


GOOD_ENTRY = {"dir": "song00", "audio": {"mix_16k": "mix_16k.wav"}}
REPORT_CASES = {
    "deep-nesting": ("[" * 20_000 + "]" * 20_000, "nested deeper"),
    "infinity": ('{"songs": [{"dir": "song00"}], "x": Infinity}', "not a finite number"),
    "overflow": ('{"songs": [{"dir": "song00"}], "x": 1e999}', "finite float"),
    "nan": ('{"songs": [{"dir": "song00"}], "x": NaN}', "not a finite number"),
    "huge-int": ('{"songs": [{"dir": "song00"}], "x": ' + "9" * 5000 + "}", "not valid JSON"),
    "not-json": ("{songs", "not valid JSON"),
    "top-list": ([GOOD_ENTRY], "not an object"),
    "no-songs": ({"sampling": {}}, "lists no songs"),
    "songs-string": ({"songs": "song00"}, "lists no songs"),
    "entry-string": ({"songs": ["song00"]}, "where an object with 'dir' belongs"),
    "dir-number": ({"songs": [{"dir": 5}]}, "'dir' is a integer, expected string"),
    "dir-dotdot": ({"songs": [{"dir": ".."}]}, "names no song folder"),
    "dir-dot": ({"songs": [{"dir": "."}]}, "names no song folder"),
    "audio-list": ({"songs": [{"dir": "song00", "audio": ["mix_16k.wav"]}]}, "'audio' is a list"),
    "audio-number": ({"songs": [{"dir": "song00", "audio": {"mix_16k": 3}}]}, "file names (strings)"),
    "options-list": ({"songs": [GOOD_ENTRY], "options": []}, "'options' is a list"),
    "sampling-list": ({"songs": [GOOD_ENTRY], "sampling": [1]}, "'sampling' is not an object"),
}


@pytest.mark.parametrize("name", sorted(REPORT_CASES))
def test_a_malformed_report_json_is_one_line_naming_it(name, tmp_path):
    report, expected = REPORT_CASES[name]
    songs = _generated(tmp_path, report)
    with pytest.raises(SongLoadError) as e:
        load_songs(songs)
    message = str(e.value)
    assert "\n" not in message and str(songs / "report.json") in message and expected in message, message


def test_a_report_larger_than_the_cap_is_refused_unread(tmp_path):
    songs = _generated(tmp_path, GOOD_ENTRY)
    with open(songs / "report.json", "r+b") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB on paper, nothing on disk
    with pytest.raises(SongLoadError, match="more than the"):
        load_songs(songs)


def test_yue_eval_copies_nothing_from_beside_the_songs_folder(tmp_path, capsys):
    from inference.evaluate import main as eval_main

    (tmp_path / "private.key").write_text("secret")
    songs = _generated(tmp_path, {"songs": [{"dir": "..", "audio": {"mix_16k": "private.key"}}]})
    assert eval_main([str(songs), "--metrics", "structure", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-eval: error: ") and err.count("\n") == 1 and "names no song folder" in err, err
    assert not (tmp_path / "out").exists()


def _outside_wav(tmp_path: Path) -> Path:
    return _wav(tmp_path / "elsewhere" / "private.wav")


def test_a_symlinked_song_folder_out_of_the_songs_folder_is_refused(tmp_path):
    outside = _outside_wav(tmp_path)
    songs = _generated(tmp_path, {"songs": [GOOD_ENTRY, {"dir": "song01", "audio": {"mix_16k": "private.wav"}}]})
    (songs / "song01").symlink_to(outside.parent)
    with pytest.raises(SongLoadError, match="leads outside the songs folder.*--follow-symlinks"):
        load_songs(songs)
    assert len(load_songs(songs, follow_symlinks=True)) == 2


def test_a_symlinked_audio_file_is_not_read_or_copied_without_the_flag(tmp_path):
    from yue_train.evaluation.run import evaluate_folder

    outside = _outside_wav(tmp_path)
    songs = tmp_path / "audio"
    _wav(songs / "a.wav")
    (songs / "b.wav").symlink_to(outside)
    with pytest.raises(SongLoadError, match=r"audio .*b\.wav leads outside"):
        load_songs(songs)
    out = tmp_path / "out"
    evaluate_folder(songs, out, "structure", follow_symlinks=True, progress=False)
    assert (out / "media" / "b" / "b.wav").read_bytes() == outside.read_bytes()  # only with the flag


@pytest.mark.parametrize("links", [1, 3])
def test_symlink_loops_are_walked_once(tmp_path, links):
    songs = tmp_path / "audio"
    _wav(songs / "x" / "y" / "a.wav")
    for k in range(links):  # each folder level links back to the top: 3^depth paths, one folder each
        (songs / f"top{k}").symlink_to(songs)
        (songs / "x" / f"up{k}").symlink_to(songs)
        (songs / "x" / "y" / f"up{k}").symlink_to(songs / "x")
    found = load_songs(songs)
    assert [s.audio.id for s in found] == ["x/y/a"]


def test_report_media_names_stay_apart_for_ids_that_differ_by_space_and_underscore(tmp_path):
    from yue_train.evaluation.metrics.base import SongAudio
    from yue_train.evaluation.report import place_media
    from yue_train.evaluation.songs import LoadedSong

    a, b = _wav(tmp_path / "src1" / "mix.wav"), _wav(tmp_path / "src2" / "mix.wav", seconds=0.25)
    songs = [LoadedSong(SongAudio(i, 16000, np.zeros(1)), {"mix": p}) for i, p in (("a b", a), ("a_b", b))]
    place_media(songs, tmp_path / "report")
    targets = [s.media["mix"] for s in songs]
    assert targets[0] != targets[1]
    assert [t.read_bytes() for t in targets] == [a.read_bytes(), b.read_bytes()]


def test_an_evaluation_that_fails_while_writing_leaves_no_partial_output(tmp_path, monkeypatch):
    from yue_train.evaluation import run

    songs = tmp_path / "audio"
    _wav(songs / "a.wav")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "write_report", full_disk)
    with pytest.raises(OSError, match="No space"):
        run.evaluate_folder(songs, tmp_path / "out", "structure", progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    with pytest.raises(OSError):  # into an existing folder: the new files go, the folder's own stay
        monkeypatch.setattr(run, "write_report", full_disk)
        run.evaluate_folder(songs, songs, "structure", progress=False)
    assert sorted(p.name for p in songs.iterdir()) == ["a.wav"]


# ------------------------------------------------------------------------------------------ codes and npy
def _npy_with_header(path: Path, shape: tuple[int, ...], dtype: str = "<i8", data: bytes = b"") -> Path:
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data)
    return path


NPY_CASES = {
    "claims-1e12": (lambda p: _npy_with_header(p, (8, 10**12 // 8)), "claims 1,000,000,000,000 entries"),
    "claims-more-than-held": (lambda p: _npy_with_header(p, (8, 100), data=b"\0" * 64), "holds 64 bytes"),
    "object-dtype": (lambda p: _npy_with_header(p, (2,), dtype="|O", data=b"\0" * 16), "Python objects"),
    "bad-header": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}     \n"), "not a .npy"),
    "truncated-header": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\xff\xff{"), "not a .npy"),
}


@pytest.mark.parametrize("name", sorted(NPY_CASES))
def test_npy_headers_are_checked_against_the_file_size(name, tmp_path):
    from yue_train.data.manifest import RecordError, load_codes

    make, expected = NPY_CASES[name]
    path = tmp_path / "codes.npy"
    make(path)
    with pytest.raises(RecordError) as e:
        load_codes("codes.npy", tmp_path, "codec")
    assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)


CODE_PATH_CASES = {
    "absolute-outside": lambda root, out: str(out),
    "dotdot": lambda root, out: "../outside/codes.npy",
    "symlink-out": lambda root, out: (root / "link.npy").symlink_to(out) or "link.npy",
    "symlinked-folder": lambda root, out: (root / "npy").symlink_to(out.parent) or "npy/codes.npy",
}


@pytest.mark.parametrize("name", sorted(CODE_PATH_CASES))
def test_tokenize_reads_codes_only_under_its_root(name, tmp_path):
    from yue_train.data.manifest import RecordError, load_codes

    root, outside = tmp_path / "root", tmp_path / "outside" / "codes.npy"
    root.mkdir()
    outside.parent.mkdir()
    np.save(outside, np.zeros((8, 100), dtype=np.int64))
    value = CODE_PATH_CASES[name](root, outside)
    with pytest.raises(RecordError, match="lies outside --root"):
        load_codes(value, root, "codec", confine=True)
    assert load_codes(str(outside), root, "codec").shape == (8, 100)  # unconfined callers (--ref-codes) read it


def test_a_yue_index_symlink_is_never_written_through(tmp_path):
    from tests.training.helpers import write_random_shards
    from yue_train.data.doc_index import INDEX_DIR, load_index

    shards = write_random_shards(tmp_path / "shards", 20)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (shards / INDEX_DIR).symlink_to(victim)
    shard = sorted(shards.glob("*.tar"))[0]
    index = load_index(str(shard), fallback=tmp_path / "fallback")
    assert len(index) > 0
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert list((tmp_path / "fallback").rglob("*.npz"))  # cached where the run owns the folder


def _planted_index(path: Path, n: int) -> None:
    """A zip-compressed index whose arrays claim ``n`` documents (zeros compress to almost nothing)."""
    arrays = {
        "version": np.array(1), "keys": np.zeros(n, dtype="<U1"), "offsets": np.zeros((n, 3), np.int64),
        "sizes": np.zeros((n, 3), np.int64), "n_tokens": np.zeros(n, np.int64), "id_crc": np.zeros(n, np.int64),
        "bad": np.zeros(n, dtype="<U1"), "damage": np.array(["", ""]),
    }  # fmt: skip
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def test_a_planted_document_index_larger_than_its_shard_is_rebuilt(tmp_path):
    from tests.training.helpers import write_random_shards
    from yue_train.data import doc_index

    shards = write_random_shards(tmp_path / "shards", 20)
    shard = str(sorted(shards.glob("*.tar"))[0])
    good = doc_index.load_index(shard)
    planted = shards / doc_index.INDEX_DIR / doc_index._index_name(shard)
    _planted_index(planted, 2_000_000)
    with zipfile.ZipFile(planted) as z:
        assert max(i.file_size for i in z.infolist()) > doc_index.max_index_bytes(os.stat(shard).st_size)
    assert len(doc_index.load_index(shard)) == len(good)


# ------------------------------------------------------------------------------------------ configs and recipes
def test_an_override_nested_20000_deep_is_one_line(capsys):
    from yue_train.cli.train import main as train_main

    assert train_main(["recipe=tiny", "trainer.x=" + "[" * 20_000 + "]" * 20_000, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-train: error: override trainer.x=...: nested 20,000 levels") and err.count("\n") == 1


ALIAS_BOMB = textwrap.dedent(
    """\
    a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)


def test_an_unused_alias_bomb_in_a_recipes_folder_is_never_parsed(tmp_path):
    bombs = tmp_path / "recipes"
    bombs.mkdir()
    (bombs / "bomb.yaml").write_text(ALIAS_BOMB)
    code = (
        "from yue_train.config.compose import compose_config; "
        f"print(compose_config(['recipe=tiny'], [{str(bombs)!r}]).recipe_name)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "tiny", res.stderr[-2000:]


def test_a_chosen_alias_bomb_is_refused_in_one_line(tmp_path):
    from yue_train.config.compose import UsageError, compose_config

    bombs = tmp_path / "recipes"
    bombs.mkdir()
    (bombs / "bomb.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(UsageError, match="aliases expand to more than 100,000 values") as e:
        compose_config(["recipe=bomb"], [bombs])
    assert "\n" not in str(e.value)


TEXT_CASES = {"genre": "--genre-txt", "lyrics": "--lyrics-txt"}


@pytest.mark.parametrize("what", sorted(TEXT_CASES))
def test_a_16_gib_text_file_is_refused_unread(what, tmp_path, capsys):
    from inference.cli import main as infer_main

    (tmp_path / "genre.txt").write_text("pop")
    (tmp_path / "lyrics.txt").write_text("[verse]\nla\n")
    with open(tmp_path / f"{what}.txt", "r+b") as f:
        f.truncate(16 << 30)  # sparse
    args = ["generate", "--genre-txt", str(tmp_path / "genre.txt"), "--lyrics-txt", str(tmp_path / "lyrics.txt"),
            "--stage1-model", "m-a-p/x", "--stage2-model", "m-a-p/y", "--out", str(tmp_path / "out"),
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert infer_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-infer generate: error: ") and err.count("\n") == 1 and "17,179,869,184 bytes" in err


LRC_CASES = {
    "negative-minutes": "[-00:05.00][verse]\nla\n",
    "negative-line": "[verse]\n[00:01.00]la\n[-01:00.00]na\n",
    "negative-spaced": "[ - 00:03.00]\n[verse]\nla\n",
}


@pytest.mark.parametrize("name", sorted(LRC_CASES))
def test_a_negative_lrc_timestamp_is_refused(name):
    from yue_train.lyrics.forms import SongError, parse_lrc

    with pytest.raises(SongError, match="negative timestamp") as e:
        parse_lrc(LRC_CASES[name], "song.lrc")
    assert "\n" not in str(e.value)


def test_env_values_stay_out_of_the_records(monkeypatch):
    from omegaconf import OmegaConf

    from yue_train.config.recorded import env_expressions, recorded_yaml, redact

    monkeypatch.setenv("YUE_TEST_SECRET", "s3cr3t-token")
    cfg = OmegaConf.create({"data": {"path": "/data/${oc.env:YUE_TEST_SECRET}/shards"}, "n": 3})
    values = env_expressions(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["data"]["path"] == "/data/s3cr3t-token/shards"  # the run itself uses the value
    recorded = redact(resolved, values)
    text = recorded_yaml(recorded)
    assert "s3cr3t" not in text and "${oc.env:YUE_TEST_SECRET}" in text
    assert OmegaConf.to_container(OmegaConf.create(text), resolve=False) == recorded  # read back: same record


# ------------------------------------------------------------------------------------------ checkpoint state
def _checkpoint(folder: Path, state: object | str, manifest: object | str | None = None) -> Path:
    """A checkpoint folder as a save leaves it (COMPLETE, trainer_state.json, a manifest of them), with
    ``state`` as its trainer state and, when given, ``manifest`` in place of the true manifest."""
    from yue_train.training.checkpointing.layout import MANIFEST, MARKER
    from yue_train.training.checkpointing.verify import write_manifest

    folder.mkdir(parents=True)
    text = state if isinstance(state, str) else json.dumps(state)
    (folder / "trainer_state.json").write_text(text)
    write_manifest(folder, exclude=(MARKER, MANIFEST))
    (folder / MARKER).write_text("3")
    if manifest is not None:
        (folder / MANIFEST).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return folder


GOOD_STATE = {
    "format_version": 1,
    "step": 3,
    "tokens_seen": 100,
    "row_tokens": 120,
    "padding_tokens": 15,
    "skipped_steps": 0,
}
STATE_CASES = {
    "step-negative": ({**GOOD_STATE, "step": -1}, "step=-1"),
    "step-float": ({**GOOD_STATE, "step": 2.5}, "step=2.5"),
    "step-string": ({**GOOD_STATE, "step": "3"}, "step='3'"),
    "step-bool": ({**GOOD_STATE, "step": True}, "step=True"),
    "step-nan": ('{"format_version": 1, "step": NaN, "tokens_seen": 1, "skipped_steps": 0}', "damaged"),
    "step-inf": ('{"format_version": 1, "step": 1e999, "tokens_seen": 1, "skipped_steps": 0}', "damaged"),
    "tokens-missing": ({"format_version": 1, "step": 3, "skipped_steps": 0}, "no 'tokens_seen'"),
    "padding-missing": ({k: v for k, v in GOOD_STATE.items() if k != "padding_tokens"}, "no 'padding_tokens'"),
    "rows-float": ({**GOOD_STATE, "row_tokens": 1.5}, "row_tokens=1.5"),
    "skipped-negative": ({**GOOD_STATE, "skipped_steps": -2}, "skipped_steps=-2"),
    "world-zero-string": ({**GOOD_STATE, "world_size": "2"}, "world_size='2'"),
    "roles-list": ({**GOOD_STATE, "role_tokens": [1, 2]}, "role_tokens"),
    "roles-negative": ({**GOOD_STATE, "role_tokens": {"vocal": -5}}, "role_tokens"),
    "state-deep": ("[" * 20_000 + "]" * 20_000, "damaged"),
    "state-list": ([GOOD_STATE], "damaged"),
}


@pytest.mark.parametrize("name", sorted(STATE_CASES))
def test_a_damaged_trainer_state_makes_the_checkpoint_fall_back(name, tmp_path):
    from yue_train.training.checkpointing.verify import verify_checkpoint

    state, expected = STATE_CASES[name]
    problem = verify_checkpoint(_checkpoint(tmp_path / "step-3", state), 3)
    assert problem is not None and problem.startswith("trainer_state.json is damaged") and expected in problem
    assert verify_checkpoint(_checkpoint(tmp_path / "good", GOOD_STATE), 3) is None


MANIFEST_CASES = {
    "deep": "{" + '"a":{' * 20_000 + "}" * 20_001,
    "files-list": {"version": 1, "files": []},
    "size-string": {"version": 1, "files": {"trainer_state.json": {"size": "x", "xxh3": "0"}}},
    "size-inf": '{"version": 1, "files": {"trainer_state.json": {"size": 1e999, "xxh3": "0"}}}',
    "no-files": {"version": 1},
}


@pytest.mark.parametrize("name", sorted(MANIFEST_CASES))
def test_a_damaged_manifest_makes_the_checkpoint_fall_back(name, tmp_path):
    from yue_train.training.checkpointing.verify import verify_checkpoint

    problem = verify_checkpoint(_checkpoint(tmp_path / "step-3", GOOD_STATE, MANIFEST_CASES[name]), 3)
    assert problem == "manifest.json is damaged"


OPTIMIZER_CASES = {
    "lr-nan": ({"lr": math.nan}, "lr=nan"),
    "lr-inf": ({"lr": math.inf}, "lr=inf"),
    "lr-negative": ({"lr": -1e-3}, "negative lr"),
    "initial-lr-nan": ({"initial_lr": math.nan}, "initial_lr=nan"),
    "betas-inf": ({"betas": (0.9, math.inf)}, "betas="),
    "eps-nan": ({"eps": math.nan}, "eps=nan"),
    "weight-decay-string": ({"weight_decay": "x"}, "weight_decay='x'"),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_non_finite_optimizer_numbers_are_found(name):
    from yue_train.training.state_numbers import optimizer_problem

    changes, expected = OPTIMIZER_CASES[name]
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    assert optimizer_problem(opt) is None
    opt.param_groups[0].update(changes)
    problem = optimizer_problem(opt)
    assert problem is not None and expected in problem, problem


def test_a_scheduler_with_a_nan_base_rate_is_found():
    from yue_train.training.state_numbers import optimizer_problem

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    sched.base_lrs = [math.nan]
    assert optimizer_problem(opt, sched) == "scheduler base_lrs[0]=nan"


# ------------------------------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def full_checkpoint(tmp_path_factory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    ckpt = tmp_path_factory.mktemp("export") / "ckpt"
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(ckpt / "model")
    return ckpt


def test_export_refuses_a_used_folder_without_overwrite(full_checkpoint, tmp_path, capsys):
    from yue_train.cli.train import main as train_main

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert train_main(["export", str(full_checkpoint), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-train: error: ") and err.count("\n") == 1 and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert train_main(["export", str(full_checkpoint), str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left beside it


def test_export_refuses_a_symlinked_target(full_checkpoint, tmp_path, capsys):
    from yue_train.cli.train import main as train_main

    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")
    assert train_main(["export", str(full_checkpoint), str(tmp_path / "out"), "--overwrite"]) == 2
    assert "is a symlink" in capsys.readouterr().err and not any((tmp_path / "real").iterdir())


def test_an_export_that_fails_while_writing_leaves_nothing(full_checkpoint, tmp_path, monkeypatch, capsys):
    from transformers import PreTrainedModel

    from yue_train.cli.train import main as train_main

    real_save = PreTrainedModel.save_pretrained

    def full_disk(self, folder, *args, **kwargs):
        real_save(self, folder, *args, **kwargs)  # files written, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full_disk)
    assert train_main(["export", str(full_checkpoint), str(tmp_path / "out")]) == 2
    assert "No space left" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _dcp_checkpoint(tmp_path: Path, size: int, chunk: tuple[int, int], relative_path: str) -> Path:
    """A DCP checkpoint (model_config/ + dcp/) whose .metadata, built from DCP's own classes with allowed
    names only, describes one tensor of ``size`` entries, a chunk (offset, length) of it, and its file."""
    import pickle

    from torch.distributed.checkpoint import filesystem as dcp_fs
    from torch.distributed.checkpoint import metadata as dcp_md
    from transformers import LlamaConfig

    ckpt = tmp_path / "ckpt"
    LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                num_key_value_heads=1).save_pretrained(ckpt / "model_config")  # fmt: skip
    (ckpt / "dcp").mkdir()
    key = "model.model.norm.weight"
    meta = dcp_md.Metadata(
        state_dict_metadata={key: dcp_md.TensorStorageMetadata(
            dcp_md.TensorProperties(dtype=torch.float32), torch.Size([size]),
            [dcp_md.ChunkStorageMetadata(torch.Size([chunk[0]]), torch.Size([chunk[1]]))])},
        storage_data={dcp_md.MetadataIndex(key, offset=torch.Size([0]), index=0):
                      dcp_fs._StorageInfo(relative_path=relative_path, offset=0, length=32)},
    )  # fmt: skip
    (ckpt / "dcp" / ".metadata").write_bytes(pickle.dumps(meta))
    (ckpt / "dcp" / "__0_0.distcp").write_bytes(b"\0" * 4096)
    return ckpt


def _dcp_secret(tmp_path: Path) -> str:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    return str(tmp_path / "secret.bin")


DCP_CASES = {
    "absolute-path": (lambda t: (8, (0, 8), _dcp_secret(t)), "names a file outside its folder"),
    "dotdot-path": (lambda t: (8, (0, 8), "../../secret.bin"), "names a file outside its folder"),
    "tensor-1e12": (lambda t: (10**12, (0, 10**12), "__0_0.distcp"), "claims 'model.model.norm.weight' holds"),
    "chunk-outside": (lambda t: (8, (4, 10**9), "__0_0.distcp"), "chunk of 'model.model.norm.weight' outside"),
    "chunk-negative": (lambda t: (8, (-4, 8), "__0_0.distcp"), "outside the tensor"),
}


@pytest.mark.parametrize("name", sorted(DCP_CASES))
def test_export_checks_dcp_metadata_as_resume_does(name, tmp_path, capsys):
    from yue_train.cli.train import main as train_main
    from yue_train.training.checkpointing.dcp import storage_problem

    make, expected = DCP_CASES[name]
    size, chunk, relative = make(tmp_path)
    ckpt = _dcp_checkpoint(tmp_path, size, chunk, relative)
    assert expected in (storage_problem(ckpt / "dcp", "dcp") or "")  # what resume's verification finds
    assert train_main(["export", str(ckpt), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


# ------------------------------------------------------------------------------------------ memory cap
ALLOCATION_SCRIPT = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
root = Path(sys.argv[1])
from yue_train.data.manifest import RecordError, load_codes
from yue_train.evaluation.metrics.pitch_track import track_pitch
from yue_train.models import hub
import numpy as np
out = {{}}
def run(name, fn):
    try:
        fn()
        out[name] = "ok"
    except MemoryError:
        out[name] = "MemoryError"
    except ValueError as e:
        out[name] = str(e)
run("npy-1e12", lambda: load_codes("big.npy", root, "codec"))
run("model-33b", lambda: hub.check_source(root / "model33b", "model"))  # what hub.load_model runs first
run("lora-r-1e8", lambda: hub.check_source(root / "lora", "adapter"))  # what hub.load_adapter runs first
run("pitch-5-min", lambda: track_pitch(np.zeros(16000 * 300, np.float32), 16000))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def capped_results(tmp_path_factory) -> dict[str, str]:
    from transformers import LlamaConfig

    root = tmp_path_factory.mktemp("capped")
    _npy_with_header(root / "big.npy", (8, 10**12 // 8))
    LlamaConfig(vocab_size=64000, hidden_size=8192, intermediate_size=22016, num_hidden_layers=60,
                num_attention_heads=64).save_pretrained(root / "model33b")  # fmt: skip
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(256)}, str(root / "model33b" / "model.safetensors"))  # 1 KB of real weights
    (root / "lora").mkdir()
    (root / "lora" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 10**8,
                                                                  "target_modules": ["q_proj"]}))  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-c", ALLOCATION_SCRIPT.format(cap=MEMORY_CAP), str(root)], capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


CAPPED_EXPECT = {
    "npy-1e12": "claims 1,000,000,000,000 entries",
    "model-33b": "do not belong together",
    "lora-r-1e8": "LoRA r=100000000",
    "pitch-5-min": "ok",  # 30,000 frames: all at once they need more than the cap
}


@pytest.mark.parametrize("name", sorted(CAPPED_EXPECT))
def test_allocation_cases_stay_under_the_memory_cap(name, capped_results):
    assert CAPPED_EXPECT[name] in capped_results[name], capped_results[name]


def test_a_symlinked_step_folder_is_skipped_and_resume_falls_back(tmp_path):
    from yue_train.training.checkpointing.publish import latest_checkpoint, pick_checkpoint

    root = tmp_path / "run" / "checkpoints"
    _checkpoint(root / "step-1", {**GOOD_STATE, "step": 1})
    elsewhere = _checkpoint(tmp_path / "elsewhere" / "step-2", {**GOOD_STATE, "step": 2})
    (root / "step-2").symlink_to(elsewhere)
    (root / "latest").symlink_to("step-2")
    chosen, skipped = pick_checkpoint(tmp_path / "run")
    assert chosen == root / "step-1" and len(skipped) == 1 and skipped[0].startswith("step-2 (a symlink to ")
    assert latest_checkpoint(tmp_path / "run") != elsewhere.resolve()


def _lying_safetensors(folder: Path, change) -> Path:
    header_len = int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    data = (folder / "model.safetensors").read_bytes()
    header = json.loads(data[8 : 8 + header_len])
    change(header)
    text = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + data[8 + header_len :])
    return folder


def _first(header: dict) -> dict:
    return header[next(k for k in header if k != "__metadata__")]


SAFETENSORS_CASES = {
    "offsets-past-end": lambda h: _first(h).update(data_offsets=[0, 10**12]),
    "shape-larger-than-range": lambda h: _first(h).update(shape=[10**6, 10**6]),
    "unknown-dtype": lambda h: _first(h).update(dtype="F128"),
    "negative-offset": lambda h: _first(h).update(data_offsets=[-8, 0]),
    "entry-not-object": lambda h: h.update(extra=[1, 2]),
}


@pytest.mark.parametrize("name", sorted(SAFETENSORS_CASES))
def test_a_safetensors_header_that_lies_is_one_line(name, full_checkpoint, tmp_path, capsys):
    import shutil

    from yue_train.cli.train import main as train_main

    shutil.copytree(full_checkpoint, tmp_path / "ckpt")
    _lying_safetensors(tmp_path / "ckpt" / "model", SAFETENSORS_CASES[name])
    assert train_main(["export", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-train: error: ") and err.count("\n") == 1 and "model.safetensors" in err, err


def test_a_safetensors_header_length_beyond_the_file_is_one_line(full_checkpoint, tmp_path, capsys):
    import shutil

    from yue_train.cli.train import main as train_main

    shutil.copytree(full_checkpoint, tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "model" / "model.safetensors"
    path.write_bytes((10**15).to_bytes(8, "little") + path.read_bytes()[8:])
    assert train_main(["export", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "header length 1000000000000000 does not fit" in err, err


CODEC_MANIFEST_CASES = {
    "file-dotdot": ({"xcodec_file": "../secret.safetensors"}, "not a file of its own folder"),
    "file-absolute": ({"xcodec_file": "/etc/passwd"}, "not a file of its own folder"),
    "config-list": ({"xcodec_config": []}, "'xcodec_config' is a list"),
    "deep": ("[" * 20_000 + "]" * 20_000, "nested deeper"),
}


@pytest.mark.parametrize("name", sorted(CODEC_MANIFEST_CASES))
def test_a_codec_manifest_names_only_files_of_its_folder(name, tmp_path):
    from yue_train.codec.model import FOLDER_FORMAT, FOLDER_VERSION, MANIFEST, YueCodec

    changes, expected = CODEC_MANIFEST_CASES[name]
    base = {"format": FOLDER_FORMAT, "version": FOLDER_VERSION, "xcodec_file": "xcodec.safetensors",
            "xcodec_config": {}, "upsamplers": {}}  # fmt: skip
    text = changes if isinstance(changes, str) else json.dumps({**base, **changes})
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(ValueError, match=expected) as e:
        YueCodec.from_folder(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path / MANIFEST) in str(e.value)


@pytest.mark.parametrize("text", ["[" * 20_000 + "]" * 20_000, '{"modes": Infinity}', '{"modes": 5}', "[]"])
def test_a_malformed_provenance_record_reads_as_none(text, tmp_path):
    from yue_train.format.provenance import PROVENANCE_NAME, read_provenance

    (tmp_path / PROVENANCE_NAME).write_text(text)
    assert read_provenance(tmp_path) is None


def test_an_adapter_config_nested_20000_deep_is_one_line(tmp_path):
    from yue_train.generation.inputs import GenerateInputError, check_adapter

    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("[" * 20_000 + "]" * 20_000)
    with pytest.raises(GenerateInputError, match="nested too deeply") as e:
        check_adapter(str(tmp_path / "adapter"))
    assert "\n" not in str(e.value)
