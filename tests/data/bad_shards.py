"""Shard folders with damaged documents, for the reader and training tests.

Good documents come from the real :class:`~yue_train.data.shards.ShardWriter` (with its summary); bad ones
are tar members written by hand with ``tarfile``, so they can hold what the writer refuses to write.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from yue_train.data.shards import ShardWriter, write_summary
from yue_train.format.document import Document
from yue_train.format.roles import Role


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def good_members(i: int, n: int = 40, vocab: int = 512) -> dict[str, bytes]:
    rng = np.random.default_rng(i)
    return {
        "input_ids.npy": npy(rng.integers(0, vocab, n).astype(np.int32)),
        "roles.npy": npy(np.full(n, Role.VOCAL, dtype=np.uint8)),
        "json": json.dumps({"id": f"doc-{i}", "mode": "test"}).encode(),
    }


class _Payload:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _ids(values: np.ndarray) -> Callable[[dict[str, bytes], Path], None]:
    def change(m: dict[str, bytes], _marker: Path) -> None:
        m["input_ids.npy"] = npy(values)
        m["roles.npy"] = npy(np.full(values.shape, Role.VOCAL, dtype=np.uint8))

    return change


def _set(name: str, data: bytes) -> Callable[[dict[str, bytes], Path], None]:
    def change(m: dict[str, bytes], _marker: Path) -> None:
        m[name] = data

    return change


def _drop(name: str) -> Callable[[dict[str, bytes], Path], None]:
    return lambda m, _marker: m.pop(name)


def _pickled_npy(m: dict[str, bytes], marker: Path) -> None:
    m["input_ids.npy"] = npy(np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)


def _raw_pickle(m: dict[str, bytes], marker: Path) -> None:
    m["input_ids.npy"] = pickle.dumps(_Payload(str(marker)))


def _huge_header(m: dict[str, bytes], _marker: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<i4", "fortran_order": False, "shape": (4 * 10**12,)})
    m["input_ids.npy"] = buf.getvalue() + bytes(160)  # 40 ids of data, a header claiming 4e12


# Kinds of bad document -> (how to damage a good one's members, a word its reason contains).
DOC_DAMAGE: dict[str, tuple[Callable[[dict[str, bytes], Path], None], str]] = {
    "int64_ids_over_2_32": (_ids(np.array([2**32 + 5, 7], dtype=np.int64)), "input_ids has values"),
    "float_ids": (_ids(np.array([1.0, 2.5])), "dtype float64"),
    "negative_ids": (_ids(np.array([-3, 4], dtype=np.int32)), "input_ids has values"),
    "bool_ids": (_ids(np.array([True, False])), "dtype bool"),
    "ids_2d": (_ids(np.ones((2, 3), dtype=np.int32)), "1-D"),
    "roles_out_of_range": (_set("roles.npy", npy(np.full(40, 200, dtype=np.uint8))), "roles has values"),
    "roles_negative": (_set("roles.npy", npy(np.full(40, -1, dtype=np.int8))), "roles has values"),
    "roles_float": (_set("roles.npy", npy(np.full(40, 2.0))), "dtype float64"),
    "length_mismatch": (_set("roles.npy", npy(np.full(39, Role.VOCAL, dtype=np.uint8))), "equal 1-D"),
    "missing_roles": (_drop("roles.npy"), "missing member roles.npy"),
    "missing_json": (_drop("json"), "missing member json"),
    "bad_json": (_set("json", b'{"id": "x", '), "bad JSON"),
    "json_not_utf8": (_set("json", b'{"id": "\xff\xfe"}'), "bad JSON"),
    "json_a_list": (_set("json", b"[1, 2]"), "not an object"),
    "pickled_npy": (_pickled_npy, "Python objects (a pickle"),
    "raw_pickle": (_raw_pickle, "magic"),
    "npy_huge_shape": (_huge_header, "header claims"),
    "not_npy": (_set("input_ids.npy", b"hello, not an array"), "magic"),
}


def write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """A shard of hand-made members (``KEY.NAME`` for each), in order."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for key, members in samples:
            for name, data in members.items():
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def damaged_folder(folder: Path, kind: str, n_docs: int = 6, bad_at: int = 3) -> Path:
    """One shard of ``n_docs`` documents, the one at ``bad_at`` damaged as ``kind``; no summary (unverified)."""
    folder.mkdir(parents=True, exist_ok=True)
    change, _ = DOC_DAMAGE[kind]
    samples = []
    for i in range(n_docs):
        members = good_members(i)
        if i == bad_at:
            change(members, folder / "unpickled.marker")
        samples.append((f"{i:09d}", members))
    write_tar(folder / "bad-000000.tar", samples)
    return folder


def written_folder(folder: Path, n_docs: int = 12, docs_per_shard: int = 4, vocab: int = 512) -> Path:
    """A folder the real writer wrote (checksums and summary included)."""
    rng = np.random.default_rng(0)
    with ShardWriter(folder, prefix="good", max_docs=docs_per_shard) as writer:
        for i in range(n_docs):
            n = int(rng.integers(20, 60))
            writer.write(Document(rng.integers(0, vocab, n), np.full(n, Role.INST), {"id": f"g-{i}", "mode": "test"}))
        shards = writer.close()
    write_summary(folder, {"shards": shards}, writer)
    return folder


def member_offset(tar_path: Path, name: str) -> int:
    """Byte offset of member ``name``'s data in a tar."""
    with tarfile.open(tar_path) as tf:
        return tf.getmember(name).offset_data


def flip_id_byte(tar_path: Path, key: str) -> None:
    """Damage document ``key`` where only its bytes show it: the last byte of its ids (its checksum fails)."""
    with tarfile.open(tar_path) as tf:
        info = tf.getmember(f"{key}.input_ids.npy")
    raw = bytearray(tar_path.read_bytes())
    raw[info.offset_data + info.size - 1] ^= 0xFF
    tar_path.write_bytes(bytes(raw))
