"""A strict reader of the regular-file members of a tar stream (ustar, GNU long names, pax headers).

Strict where Python's ``tarfile`` is lenient: ``tarfile`` ends an archive silently at an invalid header or
at a header cut short, so a shard with garbage in it or a truncated one would just look shorter. Here every
header's checksum is verified, member data must be complete, and the stream must end with the
end-of-archive block; anything else raises :class:`TarFormatError`, after which the stream cannot be
resynchronised. Nothing is extracted to disk and link members are skipped, never followed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

BLOCK = 512
MAX_MEMBER_BYTES = 1 << 31  # a larger member is a damaged size field, not a document
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\0", b"7")


class TarFormatError(ValueError):
    """The tar stream is damaged (bad header, cut short, no end-of-archive block); the message says where."""


def _read_exact(stream: BinaryIO, n: int, what: str, offset: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            raise TarFormatError(f"cut short in {what} at byte {offset + n - left} (truncated)")
        parts.append(chunk)
        left -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _octal(field: bytes, what: str, offset: int) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for sizes of 8 GiB and more
        return int.from_bytes(field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"bad {what} field in the header at byte {offset}") from None


def _header_ok(block: bytes, offset: int) -> bool:
    try:
        stored = _octal(block[148:156], "checksum", offset)
    except TarFormatError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored == unsigned:
        return True
    high = sum(1 for b in block[:148] + block[156:] if b > 127)
    return stored == unsigned - 256 * high  # old writers summed signed bytes


def _pax_path(data: bytes) -> str | None:
    """The ``path`` record of a pax extended header (``"LEN path=VALUE\\n"`` records)."""
    path = None
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("bad pax header record") from None
        if length <= 0:
            raise TarFormatError("bad pax header record")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "replace")
        pos += length
    return path


def _parse_header(block: bytes, offset: int) -> tuple[str, int, bytes]:
    """(name, data size, type flag) of a header block that is not the end-of-archive block."""
    if not _header_ok(block, offset):
        raise TarFormatError(f"bad header checksum at byte {offset} (garbage or damage in the file)")
    size = _octal(block[124:136], "size", offset)
    if size > MAX_MEMBER_BYTES:
        raise TarFormatError(f"member of {size} bytes at byte {offset} (damaged size field)")
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    if block[257:262] == b"ustar" and block[345:346] != b"\0":
        name = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace") + "/" + name
    return name, size, block[156:157]


def _members(
    read_header: Callable[[int], bytes | None], take_data: Callable[[int, int, str, bool], bytes | None]
) -> Iterator[tuple[str, int, int, bytes | None]]:
    """(name, data offset, size, data or None) of every regular file; the walk both readers share.
    ``read_header(offset)``: the 512-byte block there (None at the end of the input); ``take_data(offset, size,
    name, need)``: the member's data (its bytes when ``need``, else None), raising when it is cut short."""
    offset = 0
    long_name: str | None = None
    while True:
        block = read_header(offset)
        if block is None:
            raise TarFormatError(f"ends at byte {offset} without the end-of-archive block (truncated)")
        if block == _ZERO_BLOCK:
            return
        name, size, kind = _parse_header(block, offset)
        data = take_data(offset + BLOCK, size, name, kind in (b"L", b"x"))
        if kind == b"L":  # GNU long name of the next member
            assert data is not None
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == b"x":  # pax header of the next member
            assert data is not None
            long_name = _pax_path(data) or long_name
        elif kind in _REGULAR:
            yield (long_name or name), offset + BLOCK, size, data
            long_name = None
        else:  # directories, links, global pax headers, ...: nothing to read
            long_name = None
        offset += BLOCK + size + (-size % BLOCK)


def iter_members(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of every regular file in ``stream``, in order; raises :class:`TarFormatError` at the
    first damage (after yielding the members before it)."""

    def header(offset: int) -> bytes | None:
        block = stream.read(BLOCK)
        if not block:
            return None
        if len(block) < BLOCK:
            block += _read_exact(stream, BLOCK - len(block), "a header", offset + len(block))
        return block

    def data(offset: int, size: int, name: str, _need: bool) -> bytes:
        out = _read_exact(stream, size, f"member {name!r}", offset)
        pad = -size % BLOCK
        if pad:
            _read_exact(stream, pad, f"member {name!r}", offset + size)
        return out

    for name, _offset, _size, payload in _members(header, data):
        assert payload is not None
        yield name, payload


def iter_member_spans(f: BinaryIO) -> Iterator[tuple[str, int, int]]:
    """``(name, data offset, size)`` of every regular file of a seekable tar file, reading only its headers
    (and long names) and seeking past member data; as strict as :func:`iter_members` (a member cut short by
    the end of the file raises :class:`TarFormatError`)."""
    end = f.seek(0, 2)

    def header(offset: int) -> bytes | None:
        if offset >= end:
            return None
        if offset + BLOCK > end:
            raise TarFormatError(f"cut short in a header at byte {end} (truncated)")
        f.seek(offset)
        return f.read(BLOCK)

    def data(offset: int, size: int, name: str, need: bool) -> bytes | None:
        if offset + size + (-size % BLOCK) > end:
            raise TarFormatError(f"cut short in member {name!r} at byte {end} (truncated)")
        if not need:
            return None
        f.seek(offset)
        return f.read(size)

    for name, offset, size, _ in _members(header, data):
        yield name, offset, size
