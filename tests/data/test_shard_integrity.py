"""Shard integrity: per-document checksums recorded and verified, the shard list checked against the
summary, ids and roles checked before any cast, and every kind of damage reported as one bad document
(shard, key, reason) while the documents around it still read."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests.data.bad_shards import (
    DOC_DAMAGE,
    damaged_folder,
    good_members,
    member_offset,
    write_tar,
    written_folder,
)
from yue_train.data.packing import DataConfigError, resolve_urls
from yue_train.data.shard_reader import (
    BadDocument,
    ShardError,
    doc_checksum,
    iter_documents,
    iter_records,
    read_shard,
    shard_paths,
)
from yue_train.data.shards import read_summary
from yue_train.format.document import Document
from yue_train.format.roles import Role


def _split(items):
    docs = [x for x in items if isinstance(x, Document)]
    bad = [x for x in items if isinstance(x, BadDocument)]
    return docs, bad


def test_summary_records_one_checksum_per_document_matching_the_members(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=10, docs_per_shard=4)
    shards = read_summary(folder)["shards"]
    assert [s["n_docs"] for s in shards] == [4, 4, 2]
    docs = list(iter_documents(folder))
    for shard in shards:
        assert len(shard["xxh3_64"]) == 16 * shard["n_docs"]
    first = docs[0]
    from yue_train.data.shards import _npy_bytes

    members = {
        "input_ids.npy": _npy_bytes(first.input_ids),
        "roles.npy": _npy_bytes(first.roles),
        "json": json.dumps(first.meta, ensure_ascii=False).encode(),
    }
    assert shards[0]["xxh3_64"][:16] == doc_checksum(members)


def test_a_flipped_byte_in_input_ids_is_caught_by_the_checksum(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=8, docs_per_shard=8)
    tar = folder / "good-000000.tar"
    at = member_offset(tar, "000000002.input_ids.npy") + 140  # inside the ids, past the .npy header
    raw = bytearray(tar.read_bytes())
    raw[at] ^= 0x01  # still a valid id: only the checksum can tell
    tar.write_bytes(bytes(raw))
    docs, bad = _split(list(read_shard(str(tar))))
    assert [b.key for b in bad] == ["000000002"] and "checksum mismatch" in bad[0].reason
    assert bad[0].shard == str(tar)
    assert [d.id for d in docs] == [f"g-{i}" for i in range(8) if i != 2]
    with pytest.raises(ShardError, match=r"000000002.*checksum mismatch"):
        list(iter_documents(folder))


def test_truncated_shard_keeps_the_documents_before_the_cut(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=8, docs_per_shard=8)
    tar = folder / "good-000000.tar"
    cut = member_offset(tar, "000000005.roles.npy") + 10
    tar.write_bytes(tar.read_bytes()[:cut])
    docs, bad = _split(list(read_shard(str(tar))))
    assert [d.id for d in docs] == [f"g-{i}" for i in range(5)]
    assert len(bad) == 1 and bad[0].key == "000000005" and "truncated" in bad[0].reason


def test_garbage_over_a_tar_header_is_reported_not_silently_ended(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=8, docs_per_shard=8)
    tar = folder / "good-000000.tar"
    header = member_offset(tar, "000000004.input_ids.npy") - 512
    raw = bytearray(tar.read_bytes())
    raw[header : header + 512] = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    tar.write_bytes(bytes(raw))
    docs, bad = _split(list(read_shard(str(tar))))
    assert [d.id for d in docs] == [f"g-{i}" for i in range(3)]  # doc 3 may have lost members: reported bad
    assert len(bad) == 1 and "bad header checksum" in bad[0].reason


def test_a_shard_missing_documents_at_its_end_is_reported(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=6, docs_per_shard=6)
    tar = folder / "good-000000.tar"
    docs = list(iter_documents(folder))
    write_tar(tar, [(f"{i:09d}", good_members(i)) for i in range(2)])  # rewritten with fewer, other documents
    _, bad = _split(list(read_shard(str(tar))))
    assert [b.reason for b in bad][:2] == [
        "checksum mismatch (the shard is damaged; restore it or re-run yue-prep tokenize)"
    ] * 2
    assert bad[-1].key == "(end)" and "holds 2 of the 6 documents" in bad[-1].reason
    assert len(docs) == 6


@pytest.mark.parametrize("kind", sorted(DOC_DAMAGE))
def test_each_kind_of_bad_document_is_one_bad_record_and_never_unpickled(tmp_path, kind):
    folder = damaged_folder(tmp_path / kind, kind)
    docs, bad = _split(list(iter_records(shard_paths(folder))))
    assert [d.id for d in docs] == ["doc-0", "doc-1", "doc-2", "doc-4", "doc-5"]
    assert len(bad) == 1 and bad[0].key == "000000003", bad
    assert DOC_DAMAGE[kind][1] in bad[0].reason, bad[0].reason
    assert "\n" not in bad[0].describe()
    assert not (folder / "unpickled.marker").exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "without the end-of-archive block"), (os.urandom(4096), "bad header checksum"), (bytes(100), "cut short")],
)
def test_empty_or_garbage_tar_files_are_bad_documents(tmp_path, content, reason):
    (tmp_path / "x.tar").write_bytes(content)
    (bad,) = list(read_shard(str(tmp_path / "x.tar")))
    assert isinstance(bad, BadDocument) and reason in bad.reason


def test_ids_outside_the_vocabulary_are_bad_documents(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=4, docs_per_shard=4, vocab=512)
    docs, bad = _split(list(iter_records(shard_paths(folder), vocab_size=100)))
    assert not docs and len(bad) == 4 and "embedding rows" in bad[0].reason


@pytest.mark.parametrize(
    ("ids", "roles", "match"),
    [
        (np.array([2**32 + 7], dtype=np.int64), [Role.TEXT], "input_ids has values"),  # would wrap to 7
        (np.array([2**31], dtype=np.int64), [Role.TEXT], "input_ids has values"),
        (np.array([1.0]), [Role.TEXT], "dtype float64"),  # would cast to 1
        (np.array([-1], dtype=np.int64), [Role.TEXT], "input_ids has values"),
        (np.array([1], dtype=np.int64), [len(Role)], "roles has values"),
        (np.array([1], dtype=np.int64), [256 + Role.VOCAL], "roles has values"),  # would wrap to VOCAL
        (np.ones((1, 1), dtype=np.int32), np.ones((1, 1), dtype=np.uint8), "1-D"),
    ],
)
def test_document_checks_ids_and_roles_before_casting(ids, roles, match):
    with pytest.raises(ValueError, match=match):
        Document(ids, np.asarray(roles), {"id": "x"})


def test_document_still_takes_lists_and_empty_arrays():
    doc = Document([1, 2, 2**31 - 1], [Role.TEXT, Role.VOCAL, Role.S2_CB7])
    assert doc.input_ids.dtype == np.int32 and doc.roles.dtype == np.uint8
    assert len(Document([], [])) == 0


def test_a_folder_missing_listed_shards_is_refused_in_one_line(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=30, docs_per_shard=1)
    for tar in sorted(folder.glob("*.tar"))[9:]:
        tar.unlink()
    with pytest.raises(DataConfigError) as e:
        resolve_urls(str(folder))
    msg = str(e.value)
    assert "21 of the 30 shards its summary.json lists are missing" in msg and "restore them" in msg
    assert "\n" not in msg


def test_a_tar_not_listed_in_the_summary_is_refused(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=4, docs_per_shard=2)
    shutil.copy(folder / "good-000000.tar", folder / "stray.tar")
    with pytest.raises(DataConfigError, match=r"1 \.tar files are not listed in its summary.json \(stray.tar\)"):
        resolve_urls(str(folder))


def test_a_summary_whose_checksums_do_not_fit_is_refused(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=4, docs_per_shard=2)
    summary = json.loads((folder / "summary.json").read_text())
    summary["shards"][0]["xxh3_64"] = "abc"
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ShardError, match="do not match its 2 documents"):
        shard_paths(folder)


def test_a_summary_that_lists_shards_without_checksums_is_refused(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=4, docs_per_shard=2)
    summary = json.loads((folder / "summary.json").read_text())
    for shard in summary["shards"]:
        del shard["xxh3_64"]
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ShardError, match="checksums of .* are missing or do not match its 2 documents; re-run"):
        shard_paths(folder)


def test_a_fifo_named_like_a_shard_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "x.tar")
    with pytest.raises(ShardError, match="not a regular file"):
        list(read_shard(str(tmp_path / "x.tar")))


def test_long_member_names_and_pax_headers_read(tmp_path):
    import io
    import tarfile

    key = "d" * 120  # longer than a ustar name: a pax (or GNU) header carries it
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        path = tmp_path / f"long-{fmt}.tar"
        with tarfile.open(path, "w", format=fmt) as tf:
            for name, data in good_members(0).items():
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size, info.mtime = len(data), 1.5
                tf.addfile(info, io.BytesIO(data))
        (doc,) = list(read_shard(str(path)))
        assert isinstance(doc, Document) and doc.id == "doc-0"


def test_extra_members_such_as_pickles_are_ignored_never_loaded(tmp_path):
    import pickle

    from tests.data.bad_shards import _Payload

    marker = tmp_path / "unpickled.marker"
    members = {**good_members(0), "pyd": pickle.dumps(_Payload(str(marker))), "pickle": pickle.dumps(1)}
    (doc,) = list(read_shard(str(write_tar(tmp_path / "x.tar", [("000000000", members)]))))
    assert isinstance(doc, Document) and doc.id == "doc-0"
    assert not marker.exists()
