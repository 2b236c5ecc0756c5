"""Training never dies on a bad document: each is skipped, counted once and logged with its shard and key;
past ``data.max_bad_docs`` the run saves a checkpoint and stops with one line. Command URLs (``pipe:``) in
a config run nothing unless ``data.allow_commands=true``, and training refuses URLs in one line."""

from __future__ import annotations

import io
import re
import tarfile
from types import SimpleNamespace

import pytest

from tests.data.bad_shards import DOC_DAMAGE, good_members, write_tar
from tests.training.helpers import compose
from yue_train.cli.train import main
from yue_train.data.train_data import TrainData, build_train_data
from yue_train.training.checkpointing.publish import latest_checkpoint
from yue_train.training.logger import read_metrics
from yue_train.training.trainer import run_training
from yue_train.training.validate import ConfigError

# The kinds a red-team pass saw crash training, plus more; each appears once in the folder below.
KINDS = [
    "length_mismatch", "ids_2d", "negative_ids", "roles_out_of_range", "missing_roles", "bad_json",
    "pickled_npy", "int64_ids_over_2_32", "float_ids", "raw_pickle", "json_a_list", "npy_huge_shape",
]  # fmt: skip


def bad_folder(folder, good_per_bad: int = 2):
    """One shard with ``good_per_bad`` good documents before each bad one (one per kind), then a truncated
    shard and a shard of garbage: ``len(KINDS) + 2`` bad documents in all."""
    folder.mkdir(parents=True, exist_ok=True)
    samples, n = [], 0
    for kind in KINDS:
        for _ in range(good_per_bad):
            samples.append((f"{n:09d}", good_members(n)))
            n += 1
        members = good_members(n)
        DOC_DAMAGE[kind][0](members, folder / "unpickled.marker")
        samples.append((f"{n:09d}", members))
        n += 1
    write_tar(folder / "a-000000.tar", samples)
    whole = write_tar(folder / "a-000001.tar", [(f"{i:09d}", good_members(i)) for i in range(n, n + 4)]).read_bytes()
    (folder / "a-000001.tar").write_bytes(whole[: len(whole) // 2])
    (folder / "a-000002.tar").write_bytes(bytes(range(256)) * 8)
    return folder


N_BAD = len(KINDS) + 2


def _ov(shards, run_dir, *extra):
    return (
        "recipe=tiny_random", f"data.train=[{{path: '{shards}'}}]", f"trainer.run_dir={run_dir}",
        "trainer.resume=none", "trainer.cpu_threads=1", *extra,
    )  # fmt: skip


def test_bad_documents_are_skipped_counted_once_and_logged(tmp_path, capsys):
    shards = bad_folder(tmp_path / "bad")
    # ~3 documents per row, 4 rows per step: 6 steps pass over the folder more than once
    result = run_training(compose(*_ov(shards, tmp_path / "run", "trainer.max_steps=6", "data.max_bad_docs=50")))
    assert result["status"] == "finished" and result["step"] == 6
    assert result["skipped_docs"] == N_BAD  # each counted once, however often the epochs pass it
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("skipped bad document")]
    assert len(lines) == N_BAD
    assert any("a-000000.tar [000000002]: input_ids" in x for x in lines)  # shard and key named
    assert any("a-000001.tar" in x and "truncated" in x for x in lines)
    assert read_metrics(tmp_path / "run")[-1]["skipped_docs"] == N_BAD
    assert "Traceback" not in err
    assert not (shards / "unpickled.marker").exists()


def test_too_many_bad_documents_save_a_checkpoint_and_stop_in_one_line(tmp_path, capsys):
    shards = bad_folder(tmp_path / "bad", good_per_bad=6)
    run = tmp_path / "run"
    code = main([*_ov(shards, run, "trainer.max_steps=50", "data.max_bad_docs=2")])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = [x for x in err.splitlines() if x.startswith("yue-train: error:")]
    assert re.search(r"step \d+: \d+ bad documents skipped, more than data.max_bad_docs=2", line), line
    assert "checkpoint saved" in line
    assert "a-000000.tar" in line and "Traceback" not in err
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and 0 < int(ckpt.name.split("-")[1]) < 50


def _stream(folder, log) -> TrainData:
    cfg = SimpleNamespace(train=[SimpleNamespace(path=str(folder))], eval=None, eval_fraction=0.0, allow_commands=False,
                          max_bad_docs=100, shuffle_buffer=4, seq_len=64, batch_size=2, overflow="next_row")  # fmt: skip
    return build_train_data(cfg, 1, None, [1.0], log=log, prefetch=False)


def _step(data: TrainData) -> list:
    batches = data.next_step()
    data.sync_bad_docs()
    return batches


def test_resumed_stream_keeps_the_count_and_does_not_report_again(tmp_path):
    folder = bad_folder(tmp_path / "bad")
    logged: list[str] = []
    a = _stream(folder, logged.append)
    for _ in range(6):
        _step(a)
    state, n_logged = a.state_dict(), len(logged)
    assert a.bad_docs.count == n_logged > 0
    b = _stream(folder, logged.append)
    b.load_state_dict(state)
    assert len(logged) == n_logged and b.bad_docs.count == a.bad_docs.count
    for _ in range(4):
        (x,), (y,) = _step(a), _step(b)
        assert all((s == t).all() for s, t in zip(x.tensors(), y.tensors(), strict=True))
    assert b.bad_docs.count == a.bad_docs.count


def _pipe_folder(tmp_path):
    tar = write_tar(tmp_path / "p.tar", [(f"{i:09d}", good_members(i)) for i in range(8)])
    marker = tmp_path / "command-ran"
    return f"pipe:touch {marker}; cat {tar}", marker


@pytest.mark.parametrize("scheme", ["pipe", "PIPE"])
def test_a_pipe_url_in_a_config_runs_nothing_by_default(tmp_path, scheme):
    url, marker = _pipe_folder(tmp_path)
    url = scheme + url[4:]
    cfg = compose(*_ov("x", tmp_path / "run"), f"data.train=[{{path: '{url}', tokens: 1000}}]")
    with pytest.raises(ConfigError) as e:
        run_training(cfg)
    assert "data.allow_commands=true" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


def test_a_url_to_train_on_is_refused_in_one_line_that_says_to_copy_the_shards(tmp_path):
    url, marker = _pipe_folder(tmp_path)
    cfg = compose(
        *_ov("x", tmp_path / "run", "trainer.max_steps=2", "data.allow_commands=true"),
        f"data.train=[{{path: '{url}', tokens: 1000}}]",
    )
    with pytest.raises(ConfigError) as e:
        run_training(cfg)
    assert "is a URL" in str(e.value) and "copy the shards to a local folder" in str(e.value)
    assert "\n" not in str(e.value) and not marker.exists()


def test_pax_headers_with_float_mtimes_read_in_training(tmp_path):
    """Shards from other tar writers (pax headers, as webdataset's TarWriter writes) train as well."""
    folder = tmp_path / "pax"
    folder.mkdir()
    with tarfile.open(folder / "x.tar", "w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(12):
            for name, data in good_members(i).items():
                info = tarfile.TarInfo(f"{i:09d}.{name}")
                info.size, info.mtime = len(data), 1700000000.25
                tf.addfile(info, io.BytesIO(data))
    result = run_training(compose(*_ov(folder, tmp_path / "run", "trainer.max_steps=2")))
    assert result["skipped_docs"] == 0


def test_a_folder_whose_summary_records_no_checksums_is_refused_at_the_config_check(tmp_path):
    import json

    from tests.data.bad_shards import written_folder
    from yue_train.training.validate import ConfigError, check_config, check_data

    folder = written_folder(tmp_path / "old", n_docs=12, docs_per_shard=4)
    summary = json.loads((folder / "summary.json").read_text())
    for shard in summary["shards"]:
        del shard["xxh3_64"]
    (folder / "summary.json").write_text(json.dumps(summary))
    cfg = compose(*_ov(folder, tmp_path / "run", "trainer.max_steps=2"))
    with pytest.raises(ConfigError, match=r"data.train\[0\].path: .*summary.json: the checksums of .* are missing"):
        check_data(cfg, check_config(cfg))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_count_damage_found_when_reading_alike_and_stop_at_the_same_step(tmp_path):
    """Each process reads only its rows, so only one of them meets the damaged document; they exchange what
    they found, so both stop at the step one process stops at (a process that did not know would hang)."""
    import subprocess

    from tests.data.bad_shards import flip_id_byte, written_folder
    from tests.training.helpers import PYTHON, cli_env

    folder = written_folder(tmp_path / "s", n_docs=40, docs_per_shard=10)
    for shard in sorted(folder.glob("*.tar")):
        flip_id_byte(shard, f"{int(shard.stem.split('-')[-1]) * 10 + 3:09d}")  # one document in each shard
    steps = {}
    for nproc in (1, 2):
        run = tmp_path / f"run{nproc}"
        args = [*_ov(folder, run, "trainer.max_steps=30", "data.max_bad_docs=2", "data.batch_size=2",
                     "trainer.global_batch_size=4")]  # fmt: skip
        cmd = [PYTHON]
        if nproc > 1:
            cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
            args.append("distributed=ddp")
        proc = subprocess.run(
            [*cmd, "-m", "yue_train.cli.train", *args], env=cli_env(), capture_output=True, text=True, timeout=300
        )
        lines = [x for x in proc.stderr.splitlines() if x.startswith("yue-train: error:")]
        assert proc.returncode != 0 and len(lines) == nproc and len(set(lines)) == 1, proc.stderr[
            -3000:
        ]  # each process
        found = re.search(r"step (\d+): (\d+) bad documents skipped, more than data.max_bad_docs=2", lines[0])
        assert found and "checksum mismatch" in lines[0], lines[0]
        steps[nproc] = (int(found[1]), int(found[2]))
        assert latest_checkpoint(run).name == f"step-{steps[nproc][0]}"
    assert steps[1] == steps[2]  # the same step, the same count
