"""Per-shard document index: where each document's members lie in its tar, its length and its id's hash.

The training planner (:mod:`.planner`) plans every step from these few numbers per document (token count,
crc32 of the id for the held-out split); :mod:`.train_data` reads a document only where a row of this
process holds it, with one ``pread`` of its members at their recorded offsets. Building an index reads the tar headers
(seeking past member data) plus each document's small JSON member and its two ``.npy`` headers, so it
costs a small fraction of reading the shard; it is built once per shard file and cached.

Cache location: beside the shards (``FOLDER/.yue-index/``) when that folder is writable, so every run and
every process reading the corpus shares one index built once; otherwise under the caller's fallback folder
(the trainer passes its run folder's ``data_index/``). Before training the trainer's processes build the
missing indexes, each a share of the shards, then meet at a barrier; any process that still finds one missing
(another machine, a fallback folder that is not shared) builds it itself: the file is written to a
temporary name and renamed, so concurrent builders are harmless. An index file's name carries the shard's
size and a hash of its documents' checksums from ``summary.json`` (so a copied folder keeps its indexes),
or, for shards without a summary, its size, mtime and ctime: a shard that changes gets a new index.
(Damage that keeps both, bit-rot inside a document, is caught by the document's checksum when it is
read.) Index files hold plain arrays, loaded with ``allow_pickle=False``.

What the index judges: structural damage (a damaged or truncated tar, a missing or repeated member, an
``.npy`` header or JSON member that cannot give a length or an id) makes an entry *bad at index time*: the
planner skips it with the reason :func:`~.shard_reader.read_shard` gives for it (found by the same full
check). Everything that needs the member data (checksum, dtypes, value ranges, vocabulary) is checked when
the document is read for training (:func:`read_document`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from yue_train.data.shard_reader import (
    DAMAGED,
    MEMBERS,
    ShardError,
    group_samples,
    listed_checksum,
    listed_shard,
    missing_members,
    open_shard,
    verified_document,
)
from yue_train.data.tar_stream import iter_member_spans
from yue_train.errors import first_line
from yue_train.format.document import Document
from yue_train.format.npy import read_npy_header

INDEX_VERSION = 1
INDEX_DIR = ".yue-index"
MAX_ENTRY_BYTES = 8192  # per document in one index array: key and reason strings of up to 2048 characters
HEAD = 4096  # bytes read from the start of an .npy member for its header (more only for a longer header)


@dataclass
class ShardIndex:
    """The entries (samples) of one shard in order, and the damage that ended it early, if any."""

    keys: np.ndarray  # (n,) str
    offsets: np.ndarray  # (n, 3) int64: data offset of each member of MEMBERS; -1 where missing
    sizes: np.ndarray  # (n, 3) int64
    n_tokens: np.ndarray  # (n,) int64 (0 for bad entries)
    id_crc: np.ndarray  # (n,) int64: zlib.crc32 of the document id
    bad: np.ndarray  # (n,) str: why the entry cannot be used ("" when it can)
    damage_key: str = ""
    damage: str = ""  # "damaged shard: ..." when the tar could not be read to its end

    def __len__(self) -> int:
        return len(self.keys)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array(INDEX_VERSION), "keys": self.keys, "offsets": self.offsets, "sizes": self.sizes,
            "n_tokens": self.n_tokens, "id_crc": self.id_crc, "bad": self.bad,
            "damage": np.array([self.damage_key, self.damage]),
        }  # fmt: skip

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> ShardIndex:
        if int(a["version"]) != INDEX_VERSION:
            raise ValueError("index version")
        damage_key, damage = (str(x) for x in a["damage"])
        index = cls(a["keys"], a["offsets"], a["sizes"], a["n_tokens"], a["id_crc"], a["bad"], damage_key, damage)
        n = len(index.keys)
        shapes = [(index.offsets, (n, 3)), (index.sizes, (n, 3)), (index.n_tokens, (n,)), (index.id_crc, (n,))]
        if any(x.shape != shape or x.dtype != np.int64 for x, shape in shapes) or index.bad.shape != (n,):
            raise ValueError("index arrays")
        if n and (int(index.n_tokens.min()) < 0 or int(index.sizes.min()) < 0):
            raise ValueError("index values")
        return index


def id_crc(doc_id: str) -> int:
    return zlib.crc32(doc_id.encode("utf-8"))


# ------------------------------------------------------------------------------------------ building
def _pread(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ValueError(f"cut short: {len(data)} of {size} bytes at byte {offset}")
    return data


def _members_of(fd: int, offsets: np.ndarray, sizes: np.ndarray) -> dict[str, bytes]:
    """The members of one document, read with one pread spanning them (they are adjacent in the tar)."""
    present = [i for i in range(len(MEMBERS)) if offsets[i] >= 0]
    start = min(int(offsets[i]) for i in present)
    stop = max(int(offsets[i] + sizes[i]) for i in present)
    span = _pread(fd, start, stop - start)
    return {MEMBERS[i]: span[offsets[i] - start : offsets[i] - start + sizes[i]] for i in present}


# The header numpy writes for a 1-D array; anything else goes through numpy's own header parser.
_PLAIN_1D = re.compile(rb"\{'descr': '([<>|=]?[a-z]\d+)', 'fortran_order': (?:False|True), 'shape': \((\d+),\), \} *\n")
_ITEMSIZE: dict[bytes, int] = {}


def _plain_length(head: bytes, size: int) -> int | None:
    """The length of a 1-D integer ``.npy`` member from its header text (None: use numpy's parser)."""
    if head[:6] != b"\x93NUMPY" or head[6] != 1:
        return None
    end = 10 + int.from_bytes(head[8:10], "little")
    m = _PLAIN_1D.fullmatch(head, 10, end)
    if m is None or m[1][-2:-1] not in (b"i", b"u"):
        return None
    itemsize = _ITEMSIZE.get(m[1])
    if itemsize is None:
        itemsize = _ITEMSIZE[m[1]] = np.dtype(m[1].decode()).itemsize
    n = int(m[2])
    return n if n * itemsize == size - end else None


def _length(fd: int, offset: int, size: int, name: str) -> int:
    head = _pread(fd, offset, min(size, HEAD))
    n = _plain_length(head, size)
    if n is not None:
        return n
    try:
        shape = read_npy_header(io.BytesIO(head), size, name)[0]
    except ValueError:  # a header longer than HEAD bytes
        shape = read_npy_header(io.BytesIO(_pread(fd, offset, min(size, 1 << 17))), size, name)[0]
    if len(shape) != 1:
        raise ValueError("not 1-D")
    return int(shape[0])


def _light(fd: int, offsets: np.ndarray, sizes: np.ndarray) -> tuple[int, int]:
    """(token count, id crc) from the two .npy headers and the JSON member; ValueError when they do not give
    a plain 1-D length pair and an id."""
    lengths = [_length(fd, int(offsets[i]), int(sizes[i]), MEMBERS[i]) for i in (0, 1)]  # input_ids, roles
    if lengths[0] != lengths[1]:
        raise ValueError("lengths differ")
    meta = json.loads(_pread(fd, int(offsets[2]), int(sizes[2])).decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("not an object")
    return lengths[0], id_crc(str(meta.get("id", "")))


def build_index(url: str) -> ShardIndex:
    """Scan one local shard (headers, JSON members, .npy headers); see the module docstring."""
    listed = listed_shard(url)
    samples: list[tuple[str, dict[str, tuple[int, int]], str | None]] = []
    damage_key = damage = ""
    with open_shard(url) as f:
        spans = ((name, (offset, size)) for name, offset, size in iter_member_spans(f))
        for key, members, problem in group_samples(spans):
            if problem is not None and problem.startswith(DAMAGED):
                damage_key, damage = key, problem
                break
            samples.append((key, members, problem))
        n = len(samples)
        offsets, sizes = np.full((n, 3), -1, dtype=np.int64), np.zeros((n, 3), dtype=np.int64)
        n_tokens, crcs = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        bad = [""] * n
        fd = f.fileno()
        for j, (_, members, problem) in enumerate(samples):
            for i, m in enumerate(MEMBERS):
                if m in members:
                    offsets[j, i], sizes[j, i] = members[m]
            problem = problem or missing_members(members)
            if problem is not None:
                bad[j] = problem
                continue
            try:
                n_tokens[j], crcs[j] = _light(fd, offsets[j], sizes[j])
            except (ValueError, UnicodeDecodeError, RecursionError):
                try:  # the full check says why, as read_shard would (checksum first)
                    doc = verified_document(_members_of(fd, offsets[j], sizes[j]), listed_checksum(listed, j))
                    n_tokens[j], crcs[j] = len(doc), id_crc(doc.id)
                except (ValueError, TypeError) as e:
                    bad[j] = first_line(e)
    keys = np.array([s[0] for s in samples], dtype=str) if samples else np.zeros(0, dtype="<U1")
    return ShardIndex(keys, offsets, sizes, n_tokens, crcs, np.array(bad, dtype=str).reshape(n), damage_key, damage)


# ------------------------------------------------------------------------------------------ caching
def _index_name(url: str) -> str:
    st = os.stat(url)
    listed = listed_shard(url)
    if listed is not None:  # the documents' checksums name the content: copies keep the index
        tag = f"{st.st_size}-x{xxhash.xxh3_64_hexdigest(listed.checksums.encode())}"
    else:
        tag = f"{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"
    return f"{Path(url).name}.{tag}.v{INDEX_VERSION}.npz"


def _candidates(url: str, fallback: Path | None) -> list[Path]:
    """Index folders to read and write, in order; a ``.yue-index`` that is a symlink is never used (a
    planted link would make training write and delete index files in the folder it points to)."""
    folder = Path(url).resolve().parent
    out = [] if (folder / INDEX_DIR).is_symlink() else [folder / INDEX_DIR]
    if fallback is not None:
        out.append(Path(fallback) / hashlib.sha1(str(folder).encode()).hexdigest()[:16])
    return out


def _write(path: Path, index: ShardIndex, shard_name: str) -> None:
    if path.parent.is_symlink():
        raise OSError(f"{path.parent} is a symlink; index files are not written through it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **index.arrays())
    os.replace(tmp, path)
    for old in path.parent.glob(f"{shard_name}.*.npz"):  # indexes of earlier versions of this shard
        if old != path:
            old.unlink(missing_ok=True)


def max_index_bytes(shard_bytes: int) -> int:
    """The most bytes one array of a shard's index may hold uncompressed: every document takes at least
    three 512-byte tar headers, and each holds at most :data:`MAX_ENTRY_BYTES` in any index array."""
    return (shard_bytes // 1536 + 1) * MAX_ENTRY_BYTES + (1 << 16)


def _read(path: Path, shard_bytes: int | None = None) -> ShardIndex | None:
    """The index in ``path``; None when absent, damaged, from another version, a symlink, or holding arrays
    larger than the shard's documents can need (a planted file: rebuilt, nothing large allocated)."""
    if path.is_symlink():
        return None
    try:
        if shard_bytes is not None:
            with zipfile.ZipFile(path) as z:
                if any(info.file_size > max_index_bytes(shard_bytes) for info in z.infolist()):
                    return None
        with np.load(path, allow_pickle=False) as a:
            index = ShardIndex.from_arrays({k: a[k] for k in a.files})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent, damaged or from another version: rebuilt
    if shard_bytes is not None and len(index) and int((index.offsets + index.sizes).max()) > shard_bytes:
        return None  # member ranges past the shard's end: a read would allocate what the index claims
    return index


def has_index(url: str, fallback: Path | None = None) -> bool:
    name = _index_name(url)
    return any((d / name).exists() for d in _candidates(url, fallback))


def load_index(url: str, fallback: Path | None = None) -> ShardIndex:
    """The cached index of a local shard, built (and cached) when missing; ShardError if the shard cannot
    be opened."""
    try:
        name = _index_name(url)
    except OSError as e:
        raise ShardError(f"{url} cannot be opened ({e.strerror or type(e).__name__})") from None
    places = _candidates(url, fallback)
    shard_bytes = os.stat(url).st_size
    for d in places:
        found = _read(d / name, shard_bytes)
        if found is not None:
            return found
    index = build_index(url)
    for d in places:
        try:
            _write(d / name, index, Path(url).name)
            break
        except OSError:
            continue  # not writable here: try the fallback folder (or keep it in memory only)
    return index


# ------------------------------------------------------------------------------------------ reading
def read_document(
    fd: int, index: ShardIndex, entry: int, want: str | None, vocab_size: int | None
) -> tuple[Document, int]:
    """(document, bytes read) of one indexed entry, checked in full; ValueError/TypeError saying why not."""
    offsets, sizes = index.offsets[entry], index.sizes[entry]
    members = _members_of(fd, offsets, sizes)
    doc = verified_document(members, want, vocab_size)
    if len(doc) != int(index.n_tokens[entry]):
        raise ValueError("the document changed since its shard was indexed")
    return doc, int(sum(len(m) for m in members.values()))
