"""A pre-scan of a tar stream's headers, before Python's ``tarfile`` is let near it.

``tarfile`` reads a PAX extended header or a GNU long name/link entirely into memory (and a
chain of them recursively) before the member it describes is seen, parses PAX records with
regular expressions that are quadratic on long runs of digits (CVE-2024-6232 in 3.11.7), and
extracts old GNU sparse members as files of zeros of any size. So the evidence bundle's tar is
first walked here, 512-byte header by 512-byte header, with bounded memory: member data is
skipped by its size (octal or base-256 size field, or the PAX ``size`` record), extended
headers are read only when small, and anything a secops bundle never holds is refused. Only an
archive that passes is unpacked, and the members ``tarfile`` then yields are compared with the
ones found here.

Pure: it reads from the stream it is given and returns a value; a refusal is a
``Scan.problem`` (a sentence for the person checking the bundle), never an exception.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Literal, Protocol

BLOCK = 512
MAX_MEMBERS = 10_000          # a real bundle has tens of members
MAX_HEADER = 64 << 10         # one PAX header or GNU long name/link (a path is < 4 KiB)
MAX_HEADERS_TOTAL = 4 << 20   # all of them together
MAX_DIGITS = 255              # a run of digits in a PAX header (a file name is <= 255 bytes)

_FILE, _DIR = b"0", b"5"
_PAX, _LONGNAME, _LONGLINK = b"x", b"L", b"K"
_EXTENDED = {_PAX: "PAX", _LONGNAME: "GNU long-name", _LONGLINK: "GNU long-link"}
# the PAX records tarfile writes, and that GNU tar adds; no GNU.sparse.*, no vendor records
_PAX_KEYS = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime",
             "ctime", "hdrcharset"}
_RECORD = re.compile(rb"([1-9][0-9]{0,8}) ([A-Za-z0-9._]+)=")
_DIGIT_RUN = re.compile(rb"[0-9]{%d}" % (MAX_DIGITS + 1))
_SIZE = re.compile(rb"[0-9]{1,20}")
_OCTAL = re.compile(rb" *[0-7]* *")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    max_total: int                      # bytes of member data and extended headers
    max_members: int = MAX_MEMBERS
    max_header: int = MAX_HEADER
    max_headers_total: int = MAX_HEADERS_TOTAL


@dataclass(frozen=True)
class Member:
    kind: Literal["file", "dir"]
    size: int


@dataclass
class Scan:
    members: list[Member] = field(default_factory=list)
    problem: str | None = None
    total: int = 0     # bytes of member data and extended headers


class _Refused(Exception):
    """Internal: ends the walk; becomes ``Scan.problem`` and never leaves this module."""


def scan(stream: Readable, limits: Limits) -> Scan:
    """Walk the tar ``stream`` (already decompressed) up to its end-of-archive block."""
    result = Scan()
    try:
        _walk(stream, limits, result)
    except _Refused as e:
        result.problem = str(e)
    return result


def _walk(stream: Readable, limits: Limits, result: Scan) -> None:
    headers_total = 0
    pending: dict[bytes, int] = {}     # extended headers seen for the next member
    pax_size: int | None = None
    while True:
        block = _read(stream, BLOCK)
        where = f"member {len(result.members) + 1}"
        if len(block) < BLOCK:
            raise _Refused("the archive is truncated (no end-of-archive block)")
        if block == bytes(BLOCK):
            if pending:
                raise _Refused(f"{where}: an extended header with no member after it")
            return
        kind, size = _parse(block, where)
        if kind in _EXTENDED:
            what = _EXTENDED[kind]
            if kind in pending:
                raise _Refused(f"{where}: more than one {what} header for one member")
            if size > limits.max_header:
                raise _Refused(f"{where}: a {what} header of {size} bytes (more than "
                               f"{human(limits.max_header)}): refused before reading it")
            headers_total += size
            result.total += size
            if headers_total > limits.max_headers_total:
                raise _Refused("extended headers of more than "
                               f"{human(limits.max_headers_total)} in all: refused")
            _over_cap(result.total, limits)
            data = _read(stream, _padded(size))
            if len(data) < _padded(size):
                raise _Refused(f"{where}: the archive ends inside a {what} header")
            pending[kind] = size
            if kind == _PAX:
                pax_size = _pax(data[:size], where)
            continue
        name = _name(block, pending)
        if kind in (b"g", b"X"):
            raise _Refused(f"member {name!r}: a global or Solaris extended header, which a "
                           "secops bundle never holds")
        if kind not in (_FILE, _DIR):
            raise _Refused(f"member {name!r}: type {kind.decode('latin-1')!r}: links, devices, "
                           "sparse and other special files are refused")
        if pax_size is not None:
            size = pax_size
        if kind == _DIR:
            if size:
                raise _Refused(f"member {name!r}: a folder with {size} bytes of data")
        else:
            result.total += size
            _over_cap(result.total, limits)
        result.members.append(Member("dir" if kind == _DIR else "file", size))
        if len(result.members) > limits.max_members:
            raise _Refused(f"more than {limits.max_members} members: refused (a bundle has "
                           "tens)")
        _skip(stream, _padded(size) if kind == _FILE else 0, name)
        pending, pax_size = {}, None


def _parse(block: bytes, where: str) -> tuple[bytes, int]:
    """(type, size) of a header block whose checksum holds, as tarfile would read them."""
    stored = _number(block[148:156], f"{where}: the header checksum")
    unsigned = 256 + sum(struct.unpack_from("148B8x356B", block))
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    if stored not in (unsigned, signed):
        raise _Refused(f"{where}: a damaged tar header (bad checksum)")
    return block[156:157], _number(block[124:136], f"{where}: the size field")


def _number(field: bytes, what: str) -> int:
    """A numeric field: octal digits (NUL/space padded) or GNU base-256, like tarfile.nti,
    but refusing what it would only accept by accident (signs, underscores, negatives)."""
    if field[0] == 0o200:
        return int.from_bytes(field[1:], "big")
    if field[0] == 0o377:
        raise _Refused(f"{what} is negative")
    text = field.split(b"\0", 1)[0]
    if not _OCTAL.fullmatch(text):
        raise _Refused(f"{what} is not a number")
    return int(text.strip() or b"0", 8)


def _pax(data: bytes, where: str) -> int | None:
    """Check a PAX header record by record; its ``size`` record, if any."""
    if _DIGIT_RUN.search(data):
        raise _Refused(f"{where}: a PAX header with a run of more than {MAX_DIGITS} digits "
                       "(a known slow path of Python's tar reader)")
    pos, seen, size = 0, set(), None
    while pos < len(data):
        m = _RECORD.match(data, pos)
        length = int(m.group(1)) if m else 0
        if m is None or pos + length > len(data) or data[pos + length - 1:pos + length] != b"\n" \
                or m.end() > pos + length:
            raise _Refused(f"{where}: a malformed PAX header")
        key = m.group(2).decode("ascii")
        if key not in _PAX_KEYS:
            raise _Refused(f"{where}: a PAX record {key!r} that a secops bundle never holds")
        if key in seen:
            raise _Refused(f"{where}: the PAX record {key!r} twice in one header")
        seen.add(key)
        if key == "size":
            value = data[m.end():pos + length - 1]
            if not _SIZE.fullmatch(value):
                raise _Refused(f"{where}: a PAX size that is not a number")
            size = int(value)
        pos += length
    return size


def _name(block: bytes, pending: dict[bytes, int]) -> str:
    """The member's name as far as it serves a message (the long name is not kept)."""
    prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
    name = block[:100].split(b"\0", 1)[0]
    full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
    return full + (" (with a long name)" if pending.keys() & {_PAX, _LONGNAME} else "")


def _over_cap(total: int, limits: Limits) -> None:
    if total > limits.max_total:
        raise _Refused(f"the bundle unpacks to more than {human(limits.max_total)}: refused "
                       "before writing it (raise the cap with --max-size if the office "
                       "confirms the bundle is that large)")


def _skip(stream: Readable, n: int, name: str) -> None:
    while n > 0:
        got = len(stream.read(min(n, 1 << 20)))
        if got == 0:
            raise _Refused(f"member {name!r}: the archive ends inside its data")
        n -= got


def _read(stream: Readable, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def human(n: int) -> str:
    """1 GiB, 64 MiB, 1536 KiB: exact binary units for the caps shown to a person."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"
