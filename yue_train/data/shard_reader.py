"""Reading token shards: every document checked before use, damage reported per document, never fatal.

A shard is a tar of documents (``KEY.input_ids.npy``, ``KEY.roles.npy``, ``KEY.json``; see
:mod:`.shards`). :func:`read_shard` yields a :class:`~yue_train.format.document.Document` for each good
document and a :class:`BadDocument` (shard, key, reason) for each one that is not: a damaged or truncated
tar, a missing member, JSON that does not parse, an array that is not a plain integer ``.npy`` (pickled
data is refused, never loaded), ids or roles of the wrong dtype, shape or range (checked before any cast,
by :class:`~yue_train.format.document.Document`), or a checksum that does not match.

Checksums: the writer records an XXH3-64 hash per document (its three members, lengths included) in the
folder's ``summary.json``, as 16 hex digits per document in shard order (``xxh3_64`` of each ``shards``
entry). The checksums guard against accidental damage (bit-rot, truncated or partial copies), which a
64-bit non-cryptographic hash misses with probability 2^-64; a cryptographic hash (SHA-256) would protect
nothing more, since whoever can rewrite a shard can rewrite the summary beside it. XXH3 rather than
zlib's CRC-32 or SHA-256 for speed: about 50 GB/s against 1 GB/s and 0.5 GB/s on one core of the
development machine, so verifying costs little next to reading (``benchmarks/checksum_cost.py``). The
reader verifies each document with the bytes it already holds.

The shard list of a folder is checked against its summary: a listed shard that is missing, or a ``.tar``
the summary does not list, refuses the folder (:class:`ShardError`), and so does a summary that lists a shard
without checksums. Shards with no summary beside them are read unverified.

URLs: local paths are opened as files (regular files only). ``pipe:`` URLs run a shell command and are
refused unless ``allow_commands`` is set; other URL schemes (``https://``, ``gs://``, ...) are opened with
webdataset's ``gopen``, which starts the scheme's fixed download tool.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import urlparse

import numpy as np
import xxhash

from yue_train.data.tar_stream import TarFormatError, iter_members
from yue_train.errors import first_line
from yue_train.format.bounded_json import JsonFileError, read_json
from yue_train.format.document import Document
from yue_train.format.npy import read_npy_header

SUMMARY_NAME = "summary.json"
DEMO_SUMMARY_NAME = "demo_corpus.json"  # the generated demo corpus's summary
SUMMARY_FILES = (SUMMARY_NAME, DEMO_SUMMARY_NAME)
MEMBERS = ("input_ids.npy", "roles.npy", "json")  # the members of a document, in checksum order
CHECKSUM_KEY = "xxh3_64"  # in each summary ``shards`` entry: DIGITS hex digits per document, in shard order
DIGITS = 16
COMMAND_SCHEMES = frozenset({"pipe"})
REMOTE_SCHEMES = frozenset({"http", "https", "s3", "gs", "htgs", "ais", "sftp", "ftps", "scp", "hf"})
DAMAGED = "damaged shard:"  # starts the reason of the document a tar's damage cut off (nothing after it is read)
EXTRA_DOCUMENT = "not listed in the folder's summary (an extra document)"
T = TypeVar("T")


class ShardError(ValueError):
    """A shard folder or URL that cannot be read as given; the message is one line saying what to do."""


@dataclass(frozen=True)
class BadDocument:
    """A document that cannot be used: where it is and why."""

    shard: str
    key: str
    reason: str

    def describe(self) -> str:
        return f"{self.shard} [{self.key}]: {self.reason}"


def doc_checksum(members: Mapping[str, bytes]) -> str:
    """XXH3-64 of a document's members (length, then bytes, of each in :data:`MEMBERS` order), 16 hex digits."""
    h = xxhash.xxh3_64()
    for name in MEMBERS:
        data = members[name]
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ URLs
def url_kind(url: str) -> str:
    """``local`` (a path), ``remote`` (a URL webdataset downloads) or ``command`` (a URL that runs a command)."""
    scheme = urlparse(str(url)).scheme.lower()
    if scheme in COMMAND_SCHEMES:
        return "command"
    return "remote" if scheme in REMOTE_SCHEMES else "local"


def check_url_allowed(url: str, allow_commands: bool) -> None:
    """Refuse a command URL (``pipe:``) unless commands are allowed."""
    if url_kind(url) == "command" and not allow_commands:
        raise ShardError(
            f"{str(url)[:60]!r} is a command URL: reading it runs a shell command; "
            "set data.allow_commands=true only if you trust this config"
        )


def open_shard(url: str, allow_commands: bool = False) -> BinaryIO:
    """A binary stream of one shard: a local regular file, or a URL through webdataset's ``gopen``."""
    if url_kind(url) == "local":
        fd = os.open(url, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ShardError(f"{url} is not a regular file; shards must be plain .tar files")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    check_url_allowed(url, allow_commands)
    from webdataset.gopen import gopen, rewrite_url

    check_url_allowed(rewrite_url(url), allow_commands)  # GOPEN_REWRITE may turn a URL into a command
    return gopen(url, "rb")


# ------------------------------------------------------------------------------- summary, shard list
@dataclass(frozen=True)
class ListedShard:
    """A shard as its folder's summary lists it."""

    n_docs: int
    checksums: str  # DIGITS hex digits per document


_listing_cache: dict[str, tuple[tuple[int, int], tuple[str, dict[str, ListedShard]] | None]] = {}


def listed_shards(folder: str | Path) -> tuple[str, dict[str, ListedShard]] | None:
    """(summary file name, shards by file name) from a folder's summary; None when it has no summary
    listing shards. A summary that cannot be read raises :class:`ShardError`."""
    path = summary_file(Path(folder))
    if path is None:
        return None
    st = path.stat()
    sig = (st.st_mtime_ns, st.st_size)
    cached = _listing_cache.get(str(path))
    if cached is not None and cached[0] == sig:
        return cached[1]
    listing = _parse_listing(path)
    _listing_cache[str(path)] = (sig, listing)
    return listing


def summary_file(folder: Path) -> Path | None:
    """The folder's summary (``summary.json``, or the demo corpus's), whatever kind of file it is (a reader
    refuses one that is not a regular file); None when it has none."""
    return next((folder / name for name in SUMMARY_FILES if (folder / name).exists()), None)


def _parse_listing(path: Path) -> tuple[str, dict[str, ListedShard]] | None:
    fix = "re-run yue-prep tokenize into a fresh folder"
    try:
        summary = read_json(path)
    except JsonFileError as e:
        raise ShardError(f"{e}; {fix}") from None
    entries = summary.get("shards") if isinstance(summary, dict) else None
    if not isinstance(entries, list):
        return None
    shards: dict[str, ListedShard] = {}
    for entry in entries:
        try:
            n_docs, sums = int(entry["n_docs"]), entry.get(CHECKSUM_KEY)
            name = str(entry["name"])
        except (TypeError, KeyError, ValueError):
            raise ShardError(f"{path}: a `shards` entry lacks its name or n_docs; {fix}") from None
        if not isinstance(sums, str) or len(sums) != DIGITS * n_docs:
            raise ShardError(
                f"{path}: the checksums of {name} are missing or do not match its {n_docs} documents; {fix}"
            )
        shards[name] = ListedShard(n_docs, sums)
    return path.name, shards


def _check_listing(folder: Path, on_disk: list[str]) -> None:
    listing = listed_shards(folder)
    if listing is None:
        return
    summary_name, listed = listing
    names = {Path(p).name for p in on_disk}
    missing = sorted(set(listed) - names)
    extra = sorted(names - set(listed))
    fix = "or re-run yue-prep tokenize into a fresh folder"
    if missing:
        raise ShardError(
            f"{folder}: {len(missing)} of the {len(listed)} shards its {summary_name} lists are missing "
            f"({_some(missing)}); restore them, {fix}"
        )
    if extra:
        raise ShardError(
            f"{folder}: {len(extra)} .tar files are not listed in its {summary_name} ({_some(extra)}); "
            f"remove them, {fix}"
        )


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f", ... ({len(names) - 3} more)" if len(names) > 3 else "")


def shard_paths(path: str | Path) -> list[str]:
    """The ``*.tar`` shards of a shard folder in name order (a single ``.tar`` path is returned as is).
    The folder's list must match its summary's, and no shard may be a symlink leading out of the folder
    (:class:`ShardError` otherwise)."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise FileNotFoundError(f"no shard folder or file at {p}")
    paths = sorted(str(x) for x in p.glob("*.tar"))
    if not paths:
        raise FileNotFoundError(f"{p} holds no .tar shards (run `yue-prep tokenize` to write some)")
    root = p.resolve()
    outside = next((x for x in paths if not Path(x).resolve().is_relative_to(root)), None)
    if outside is not None:  # shards are read only from the folders the config names
        raise ShardError(
            f"{outside} is a symlink to {Path(outside).resolve()}, outside its shard folder {p}; name the folder "
            "that holds that shard in data.train instead"
        )
    _check_listing(p, paths)
    return paths


def listed_checksum(listed: ListedShard | None, index: int) -> str | None:
    """The recorded checksum of a shard's ``index``-th document; None when the shard has no summary, "" when
    the summary lists fewer documents (an extra one)."""
    return None if listed is None else listed.checksums[DIGITS * index : DIGITS * (index + 1)]


def listed_shard(url: str) -> ListedShard | None:
    if url_kind(url) != "local":
        return None
    listing = listed_shards(Path(url).parent)
    return None if listing is None else listing[1].get(Path(url).name)


# ------------------------------------------------------------------------------------------ reading
def split_member_name(name: str) -> tuple[str, str]:
    """``dir/KEY.a.b`` -> (``dir/KEY``, ``a.b``): the key ends at the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    key, _, suffix = base.partition(".")
    return (f"{folder}/{key}" if folder else key), suffix


def group_samples(members: Iterable[tuple[str, T]]) -> Iterator[tuple[str, dict[str, T], str | None]]:
    """(key, members, None) per document of a tar's ``(name, payload)`` members, in order; (key, partial
    members, ``"damaged shard: ..."``) at damage, then stop."""
    key: str | None = None
    found: dict[str, T] = {}
    problem: str | None = None  # of the document being collected
    try:
        for name, data in members:
            k, suffix = split_member_name(name)
            if key is not None and k != key:
                yield key, found, problem
                found, problem = {}, None
            key = k
            if suffix in found:
                problem = f"member {suffix!r} appears twice"
            found[suffix] = data
    except TarFormatError as e:
        yield (key or "(first document)"), found, f"{DAMAGED} {e}"
        return
    if key is not None:
        yield key, found, problem


def _npy(data: bytes, name: str) -> np.ndarray:
    """An array from ``.npy`` bytes, refusing pickled (object) data and size mismatches before allocating."""
    shape, fortran, dtype, offset = read_npy_header(io.BytesIO(data), len(data), name)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def missing_members(members: Mapping[str, object]) -> str | None:
    """``missing member ...`` naming what a document lacks of :data:`MEMBERS`; None when it has them all."""
    missing = [m for m in MEMBERS if m not in members]
    return f"missing member {', '.join(missing)}" if missing else None


def decode_document(members: Mapping[str, bytes]) -> Document:
    """The document of one sample's (complete) members; ``ValueError`` saying what is wrong."""
    try:
        meta = json.loads(members["json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"bad JSON member: {type(e).__name__}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"JSON member is a {type(meta).__name__}, not an object")
    ids, roles = _npy(members["input_ids.npy"], "input_ids.npy"), _npy(members["roles.npy"], "roles.npy")
    return Document(ids, roles, meta)  # checks dtypes, shapes and ranges before casting


def verified_document(members: Mapping[str, bytes], want: str | None, vocab_size: int | None = None) -> Document:
    """The document of one sample's members, its checksum compared with ``want`` (None: not recorded) and,
    with ``vocab_size``, its ids checked against the model's embedding rows; ``ValueError`` otherwise."""
    problem = missing_members(members)
    if problem is not None:
        raise ValueError(problem)
    if want is not None and not want:
        raise ValueError(EXTRA_DOCUMENT)
    if want is not None and doc_checksum(members) != want:
        raise ValueError("checksum mismatch (the shard is damaged; restore it or re-run yue-prep tokenize)")
    doc = decode_document(members)
    top = int(doc.input_ids.max()) if vocab_size is not None and len(doc) else -1
    if vocab_size is not None and top >= vocab_size:
        raise ValueError(f"token id {top} but the model has {vocab_size} embedding rows")
    return doc


def read_shard(
    url: str, allow_commands: bool = False, vocab_size: int | None = None
) -> Iterator[Document | BadDocument]:
    """The documents of one shard in order; a :class:`BadDocument` for each that cannot be used
    (with ``vocab_size``: also each holding an id the model has no embedding row for)."""
    listed = listed_shard(url)
    index = 0
    with open_shard(url, allow_commands) as stream:
        for key, members, problem in group_samples(iter_members(stream)):
            if problem is not None and problem.startswith(DAMAGED):
                yield BadDocument(url, key, problem)  # nothing after it can be read
                return
            want = listed_checksum(listed, index)
            index += 1
            try:
                if problem is not None:
                    raise ValueError(problem)
                doc = verified_document(members, want, vocab_size)
            except (ValueError, TypeError) as e:
                yield BadDocument(url, key, first_line(e))
                continue
            yield doc
    short = short_shard(url, index, listed)
    if short is not None:
        yield short


def short_shard(url: str, n_docs: int, listed: ListedShard | None) -> BadDocument | None:
    """The record of a shard of ``n_docs`` documents when its summary lists more; None otherwise."""
    if listed is None or n_docs >= listed.n_docs:
        return None
    return BadDocument(url, "(end)", f"holds {n_docs} of the {listed.n_docs} documents its summary lists")


def iter_records(
    urls: Iterable[str], allow_commands: bool = False, vocab_size: int | None = None
) -> Iterator[Document | BadDocument]:
    """Documents and bad documents of several shards, in order (see :func:`read_shard`)."""
    for url in urls:
        yield from read_shard(str(url), allow_commands, vocab_size)


def iter_documents(urls: str | Path | list[str], allow_commands: bool = False) -> Iterator[Document]:
    """Documents of a shard folder, a ``.tar`` or a list of shard paths/URLs, in order; the first bad
    document raises :class:`ShardError` naming its shard and key (training skips them instead,
    :mod:`.packing`)."""
    if isinstance(urls, (str, Path)):
        urls = shard_paths(urls) if url_kind(str(urls)) == "local" else [str(urls)]
    for item in iter_records(urls, allow_commands):
        if isinstance(item, BadDocument):
            raise ShardError(f"bad document {item.describe()}")
        yield item
