"""The standard-library tar shards: byte-identical to webdataset's writer, readable both ways."""

import tarfile

import numpy as np
import pytest
import webdataset as wds

from yue_train.data.shard_reader import BadDocument, group_samples, read_shard
from yue_train.data.shards import ShardWriter, iter_documents
from yue_train.data.tar_io import TarWriter
from yue_train.data.tar_stream import iter_members
from yue_train.format.document import Document

SAMPLES = [
    ("000000000", {"input_ids.npy": b"\x93NUMPY" + bytes(range(200)), "roles.npy": b"r" * 700, "json": b'{"id": "a"}'}),
    ("000000001", {"input_ids.npy": b"", "roles.npy": b"x", "json": '{"id": "\u00e9"}'.encode()}),
]


def test_writer_bytes_equal_webdatasets_for_the_same_mtime(tmp_path):
    theirs = wds.TarWriter(str(tmp_path / "wds.tar"), mtime=1_700_000_000)
    for key, members in SAMPLES:
        theirs.write({"__key__": key, **members})
    theirs.close()
    with TarWriter(tmp_path / "ours.tar", mtime=1_700_000_000) as ours:
        for key, members in SAMPLES:
            ours.write(key, members)
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "wds.tar").read_bytes()


def test_each_reader_reads_the_other_writers_file(tmp_path):
    with TarWriter(tmp_path / "ours.tar") as ours:
        for key, members in SAMPLES:
            ours.write(key, members)
    seen = [(s["__key__"], {k: v for k, v in s.items() if not k.startswith("__")}) for s in
            wds.WebDataset(str(tmp_path / "ours.tar"), shardshuffle=False, empty_check=False)]  # fmt: skip
    assert seen == SAMPLES
    theirs = wds.TarWriter(str(tmp_path / "wds.tar"))  # float mtime: PAX headers per member
    for key, members in SAMPLES:
        theirs.write({"__key__": key, **members})
    theirs.close()
    with open(tmp_path / "wds.tar", "rb") as f:
        assert [
            (key, members) for key, members, problem in group_samples(iter_members(f)) if problem is None
        ] == SAMPLES


def test_shards_read_the_same_through_a_path_and_through_webdataset(tmp_path):
    docs = [
        Document(np.arange(n, dtype=np.int32), np.full(n, 2, dtype=np.uint8), {"id": f"d{n}", "mode": "cot"})
        for n in (5, 0, 9)
    ]
    with ShardWriter(tmp_path, "cot", max_docs=2) as writer:
        for doc in docs:
            writer.write(doc)
    local = list(iter_documents(tmp_path))
    pipes = [f"pipe:cat {tmp_path / name}" for name in ("cot-000000.tar", "cot-000001.tar")]
    remote = list(iter_documents(pipes, allow_commands=True))
    for got in (local, remote):
        assert [d.meta for d in got] == [d.meta for d in docs]
        assert all(
            np.array_equal(a.input_ids, b.input_ids) and a.input_ids.dtype == np.int32
            for a, b in zip(got, docs, strict=True)
        )
        assert all(np.array_equal(a.roles, b.roles) for a, b in zip(got, docs, strict=True))


def test_same_documents_give_the_same_shard_bytes(tmp_path):
    for run in ("a", "b"):
        with ShardWriter(tmp_path / run, "cot") as writer:
            writer.write(Document(np.arange(4, dtype=np.int32), np.zeros(4, np.uint8), {"id": "x", "mode": "cot"}))
    assert (tmp_path / "a" / "cot-000000.tar").read_bytes() == (tmp_path / "b" / "cot-000000.tar").read_bytes()


def test_damaged_tar_and_repeated_member_are_one_line_bad_documents(tmp_path):
    bad = tmp_path / "bad.tar"
    with TarWriter(bad) as w:
        w.write("000000000", SAMPLES[0][1])
    bad.write_bytes(bad.read_bytes()[:700])  # cut inside the first member
    (item,) = read_shard(str(bad))
    assert isinstance(item, BadDocument) and "truncated" in item.reason and "\n" not in item.describe()
    twice = tmp_path / "twice.tar"
    with tarfile.open(twice, "w") as tar:
        for _ in range(2):
            info = tarfile.TarInfo("k.json")
            tar.addfile(info)
    (item,) = read_shard(str(twice))
    assert isinstance(item, BadDocument) and item.key == "k" and "'json' appears twice" in item.reason


def test_keys_with_a_dot_are_refused(tmp_path):
    with TarWriter(tmp_path / "x.tar") as w, pytest.raises(ValueError, match="no '.'"):
        w.write("a.b", {"json": b"{}"})
