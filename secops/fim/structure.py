"""Whether a file's whole body still holds together, for the formats an office keeps (pure).

Partial ("intermittent") encryption keeps a file's head and tail and encrypts blocks in
between: the magic bytes, a zip's central directory and a PDF's ``%%EOF`` all survive, and
the file is ruined. Compressed formats look random everywhere, so entropy cannot tell an
encrypted block from a deflated one; structure can:

- zip (docx, xlsx, odt, ...): every member's local header where the central directory says,
  and its data inflates to the CRC-32 the directory records;
- PDF: every object the classic cross-reference table names starts where it says, and every
  ``/FlateDecode`` stream inflates;
- JPEG: entropy-coded data never holds ``FF`` followed by ``01``-``BF`` (an encoder stuffs
  ``FF 00``); ciphertext holds about three in every 1,000 bytes;
- PNG: the chunk chain, each chunk's CRC-32;
- text: every block of the file is text, not the head and tail only (screened a piece at a
  time for the bytes that text never holds).

Everything reads through ``read_at`` (``os.pread`` on a descriptor) in bounded pieces, at
most ``BUDGET`` bytes per file; past it the rest is not checked (and not condemned).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ReadAt = Callable[[int, int], bytes]
BUDGET = 64 * 1024 * 1024       # bytes read per file, at most
PIECE = 1024 * 1024              # one read
OUTPUT_CAP = 512 * 1024 * 1024   # inflated bytes per file, at most (a zip bomb costs no more)
CD_CAP = 8 * 1024 * 1024         # central directory size, at most
MEMBERS_CAP = 100_000
_EOCD = struct.Struct("<4sHHHHIIH")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<4sHHHHHIIIHH")
_BAD_JPEG_PAIR = re.compile(rb"\xff[\x01-\xbf]")
_JPEG_BAD_LIMIT = 8
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes


@dataclass(frozen=True)
class Member:
    name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int


def zip_members(tail: bytes, size: int, read_at: ReadAt | None) -> list[Member] | None:
    """The central directory's entries, or None when there is none to read (or it is
    damaged). Zip64 archives give None: their structure is checked no further."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _sig, _disk, _cd_disk, _n_disk, entries, cd_size, cd_offset, _clen = \
        _EOCD.unpack_from(tail, at)
    if cd_offset == 0xFFFFFFFF or entries == 0xFFFF or cd_size > CD_CAP or \
            entries > MEMBERS_CAP or cd_offset + cd_size > size:
        return None
    tail_start = size - len(tail)
    if cd_offset >= tail_start:
        cd = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
    elif read_at is not None:
        cd = bytes(read_at(cd_offset, cd_size))
    else:
        return None
    out: list[Member] = []
    pos = 0
    for _ in range(entries):
        if pos + _CDH.size > len(cd):
            return None
        (sig, _made, _need, flags, method, _t, _d, crc, csize, usize, nlen, xlen, clen,
         _disk, _iattr, _eattr, offset) = _CDH.unpack_from(cd, pos)
        if sig != b"PK\x01\x02":
            return None
        name = cd[pos + _CDH.size:pos + _CDH.size + nlen]
        out.append(Member(name, flags, method, crc, csize, usize, offset))
        pos += _CDH.size + nlen + xlen + clen
    return out


def is_office_package(members: list[Member] | None) -> bool:
    """OOXML (``[Content_Types].xml``) or ODF (``mimetype``), whatever the member order:
    LibreOffice writes ``_rels/.rels`` first in the .docx/.xlsx it saves."""
    return members is not None and any(m.name in (b"[Content_Types].xml", b"mimetype")
                                       for m in members)


class _Budget:
    def __init__(self, read_at: ReadAt) -> None:
        self.read_at = read_at
        self.left = BUDGET
        self.output = OUTPUT_CAP

    def read(self, offset: int, n: int) -> bytes | None:
        """``n`` bytes at ``offset``, or None when the budget is spent."""
        if n > self.left:
            return None
        self.left -= n
        return bytes(self.read_at(offset, n))

    def pieces(self, offset: int, n: int) -> Iterator[bytes]:
        """``n`` bytes from ``offset`` in bounded reads, while the budget lasts."""
        end = offset + n
        while offset < end:
            piece = self.read(offset, min(PIECE, end - offset))
            if piece is None:
                return
            if not piece:
                return
            yield piece
            offset += len(piece)


def _feed(inflate: Any, data: bytes, budget: _Budget,
          on_out: Callable[[bytes], None] | None = None) -> bool | None:
    """Inflate all of ``data``: False on a zlib error (not a deflate stream, or a damaged
    one), None when the output budget is spent, else True."""
    while data:
        try:
            out = inflate.decompress(data, PIECE)
        except zlib.error:
            return False
        budget.output -= len(out)
        if budget.output < 0:
            return None
        if on_out is not None:
            on_out(out)
        data = inflate.unconsumed_tail
    return True


def zip_intact(members: list[Member], size: int, read_at: ReadAt) -> bool:
    """Each member's local header is where the directory says and its data has the CRC the
    directory records (stored or deflated members; encrypted ones by their header only)."""
    budget = _Budget(read_at)
    for m in sorted(members, key=lambda x: x.offset):
        head = budget.read(m.offset, _LFH.size)
        if head is None:
            return True  # past the budget: not condemned
        if len(head) < _LFH.size:
            return False
        sig, _need, _flags, _method, _t, _d, _crc, _cs, _us, nlen, xlen = _LFH.unpack(head)
        if sig != b"PK\x03\x04":
            return False
        name = budget.read(m.offset + _LFH.size, nlen)
        if name is None:
            return True
        if name != m.name:
            return False
        start = m.offset + _LFH.size + nlen + xlen
        if start + m.csize > size:
            return False
        if m.flags & 1 or m.method not in (0, 8):
            continue  # encrypted by design, or a method we do not inflate
        verdict = _member_crc(m, start, budget)
        if verdict is None:
            return True
        if not verdict:
            return False
    return True


def _member_crc(m: Member, start: int, budget: _Budget) -> bool | None:
    """True when the member's data checks out, False when not, None when out of budget."""
    crc = [0]

    def update(out: bytes) -> None:
        crc[0] = zlib.crc32(out, crc[0])

    inflate = zlib.decompressobj(-15) if m.method == 8 else None
    seen = 0
    for piece in budget.pieces(start, m.csize):
        seen += len(piece)
        if inflate is None:
            update(piece)
            continue
        fed = _feed(inflate, piece, budget, update)
        if fed is not True:
            return fed
    if seen < m.csize:
        return None
    if inflate is not None:
        try:
            update(inflate.flush())
        except zlib.error:
            return False
    return crc[0] == m.crc


def jpeg_intact(size: int, read_at: ReadAt) -> bool:
    """No ``FF 01``..``FF BF`` pair after the first start-of-scan (JPEG stuffs every data
    ``FF`` with ``00``; markers inside scans are ``D0``-``D7``, ``D9``)."""
    budget = _Budget(read_at)
    sos = _jpeg_first_scan(size, budget)
    if sos is None:
        return True  # no scan found within the budget: nothing to say
    bad = 0
    carry = b""
    for piece in budget.pieces(sos, size - sos):
        data = carry + piece
        bad += len(_BAD_JPEG_PAIR.findall(data[:-1] if len(data) > 1 else b""))
        if bad > _JPEG_BAD_LIMIT:
            return False
        carry = data[-1:]
    return True


def _jpeg_first_scan(size: int, budget: _Budget) -> int | None:
    """Offset of the first entropy-coded byte: walk marker segments (APPn, DQT, SOF, DHT,
    ...) from the SOI to the SOS; an embedded thumbnail inside APP1 is skipped over."""
    pos = 2
    for _ in range(1000):
        head = budget.read(pos, 4)
        if head is None or len(head) < 4 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", head[2:])[0]
        if marker == 0xDA:
            return pos + 2 + length if pos + 2 + length < size else None
        pos += 2 + length
    return None


def png_intact(size: int, read_at: ReadAt) -> bool:
    """The chunk chain from the signature to ``IEND``; every chunk's CRC-32 checks out."""
    budget = _Budget(read_at)
    pos = 8
    while True:
        head = budget.read(pos, 8)
        if head is None:
            return True
        if len(head) < 8:
            return False
        length, ctype = struct.unpack(">I4s", head)
        if not ctype.isalpha() or pos + 12 + length > size:
            return False
        crc = zlib.crc32(ctype)
        seen = 0
        for piece in budget.pieces(pos + 8, length):
            crc = zlib.crc32(piece, crc)
            seen += len(piece)
        if seen < length:
            return True  # out of budget
        stored = budget.read(pos + 8 + length, 4)
        if stored is None:
            return True
        if stored != struct.pack(">I", crc):
            return False
        if ctype == b"IEND":
            return True
        pos += 12 + length


_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_XREF_ROW = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_STREAM = re.compile(rb"(?<!end)stream\r?\n")
PDF_WHOLE_CAP = 32 * 1024 * 1024
XREF_CHECKS = 2000


def pdf_intact(tail: bytes, size: int, read_at: ReadAt) -> bool:
    """The objects of a classic cross-reference table are where it says; every
    ``/FlateDecode`` stream inflates. A PDF over ``PDF_WHOLE_CAP`` gets the table only."""
    budget = _Budget(read_at)
    if not _pdf_xref_ok(tail, size, budget):
        return False
    if size > PDF_WHOLE_CAP:
        return True
    data = b"".join(budget.pieces(0, size))
    if len(data) < size:
        return True
    for m in _STREAM.finditer(data):
        obj = data.rfind(b" obj", max(0, m.start() - 4096), m.start())
        dictionary = data[obj if obj >= 0 else max(0, m.start() - 512):m.start()]
        if b"/FlateDecode" not in dictionary or b"/Encrypt" in dictionary:
            continue
        end = data.find(b"endstream", m.end())
        if end < 0:
            return False
        fed = _feed(zlib.decompressobj(), data[m.end():end], budget)
        if fed is not True:
            return fed is None  # out of budget: not condemned
    return True


def _pdf_xref_ok(tail: bytes, size: int, budget: _Budget) -> bool:
    found = list(_STARTXREF.finditer(tail))
    if not found:
        return True  # no classic table to check (or a damaged tail: judged elsewhere)
    offset = int(found[-1].group(1))
    if offset >= size:
        return False
    table = budget.read(offset, min(size - offset, 1024 * 1024))
    if table is None:
        return True
    if not table.startswith(b"xref"):
        return True  # a cross-reference stream (PDF 1.5+): objects are not checked here
    checked = 0
    for number, row in enumerate(_XREF_ROW.finditer(table[:512 * 1024])):
        if row.group(3) != b"n":
            continue
        at = int(row.group(1))
        if at == 0:
            continue
        head = budget.read(at, 32)
        if head is None:
            return True
        if not re.match(rb"\s*\d+\s+\d+\s+obj", head):
            return False
        checked += 1
        if checked >= XREF_CHECKS or number > 1_000_000:
            break
    return True


def gzip_intact(size: int, read_at: ReadAt) -> bool:
    """The gzip stream inflates, and its trailer's CRC-32 and length check out (zlib checks
    them); members concatenated after the first are read the same way."""
    budget = _Budget(read_at)
    inflate = zlib.decompressobj(31)
    for piece in budget.pieces(0, size):
        data = piece
        while data:
            fed = _feed(inflate, data, budget)
            if fed is not True:
                return fed is None  # out of budget: not condemned
            data = inflate.unused_data if inflate.eof else b""
            if inflate.eof:
                inflate = zlib.decompressobj(31)  # the next member
    return True


# Bytes that text never holds (NUL, the C0 controls up to backspace; 0xFE and 0xFF, never in
# UTF-8) and that ciphertext holds about 10 of in every 256: a 1 KiB run of it lacks all of
# them with a probability of e^-40.
NEVER_IN_TEXT = tuple(bytes((c,)) for c in (*range(0x00, 0x09), 0xFE, 0xFF))


def holds_non_text(data: bytes) -> bool:
    """Whether ``data`` holds any of ``NEVER_IN_TEXT`` (one ``memchr`` per byte value)."""
    return any(map(data.__contains__, NEVER_IN_TEXT))


def text_intact(size: int, read_at: ReadAt, is_text: Callable[[bytes], bool]) -> bool:
    """Every 4 KiB block of the file is text (the head and tail are checked elsewhere).

    Each 1 MiB piece is first screened for ``NEVER_IN_TEXT`` (one ``memchr`` per byte value,
    a small fraction of the SHA-256 pass over the same bytes); a piece holding any of them
    is judged block by block (``is_text``: valid UTF-8, at most 1% control characters). A
    clean piece is taken as text: an encrypted block cannot be clean, and what a clean piece
    can still be (an 8-bit encoding appended to UTF-8 text) damages nothing."""
    budget = _Budget(read_at)
    for piece in budget.pieces(0, size):
        if not holds_non_text(piece):
            continue
        for at in range(0, len(piece), 4096):
            block = piece[at:at + 4096].lstrip(_CONTINUATION)  # a character cut at the start
            if block and not is_text(block):
                return False
    return True
