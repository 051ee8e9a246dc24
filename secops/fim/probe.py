"""What a file *is*, cheaply: type from magic bytes, whether its container still parses,
the entropy of a sample and a similarity fingerprint.

Everything here reads through ``os.pread`` on a file descriptor, so the fanotify thread can
probe a file through the descriptor the kernel hands it (reading that one makes no events).
A probe reads at most the head (256 KiB) and the tail (64 KiB) of a file: constant cost per
file whatever its size (``structure`` reads the body of a container, in bounded pieces).

The probe costs less than the SHA-256 pass beside it, on text as on binary files: no loop
here runs per byte or per line in Python. The similarity sketch cuts the first 64 KiB into
content-defined chunks with FastCDC (``pyfastcdc``, compiled), the entropy is a histogram of
1 KiB (Pillow's, in C), and the body of a text file is screened with ``memchr``.
"""

from __future__ import annotations

import functools
import heapq
import os
import struct
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from secops.fim import structure

HEAD = 256 * 1024      # what a probe reads of the start of a file
SAMPLE = 4096          # entropy sample: the head (same window every time, so versions
                       # compare; partial encryption starts there)
TAIL = 64 * 1024       # where zip's central directory and PDF's %%EOF live
ENTROPY_BYTES = 1024   # bytes of the sample counted for its entropy, evenly spaced
FP_WINDOW = 64 * 1024  # the similarity sketch's window: the start of the head
FP_K = 128             # bottom-k sketch size: about every chunk of a full window (~100),
                       # so similarity is close to the exact Jaccard index, not an estimate
                       # whose noise straddles the detector's 0.05
FP_LINES_BELOW = 4096  # a window shorter than this is sketched by its lines (too few chunks)
FP_CHUNKS, FP_LINES = 0xC1, 0x4C  # the sketch's first byte: what its elements are
FP_PIECE = 64          # in a text file, a chunk of non-text counts a piece per 64 bytes
_CDC_AVG, _CDC_MIN, _CDC_MAX = 512, 128, 4096  # FastCDC's chunk sizes (640 on average)
_NOT_CONTROL = bytes(c for c in range(256) if c >= 32 or c in (9, 10, 12, 13, 27))
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes: a cut character
ReadAt = Callable[[int, int], bytes]  # (offset, length) -> bytes

# Types whose bytes are already compressed or encoded: entropy says nothing for them.
CONTAINERS = frozenset({"ooxml", "zip", "pdf", "jpeg", "png", "gzip"})
KNOWN = CONTAINERS | frozenset({"text", "base64", "pgp", "empty", "gif", "tiff", "ole", "rar", "7z",
                                "xml", "sqlite"})


@dataclass(frozen=True)
class Probe:
    ftype: str          # ooxml, zip, pdf, jpeg, png, text, pgp, ..., "binary" when unknown
    parses: bool        # the container's structure is intact (True for types without one)
    entropy: float      # Shannon entropy of the first SAMPLE bytes (every 4th), bits per
                        # byte (-1 for CONTAINERS: not computed)
    fp: bytes           # a kind byte (FP_CHUNKS, FP_LINES), then the bottom-k sketch of
                        # the window's chunks (sorted uint32s); empty for CONTAINERS


def probe_fd(fd: int, size: int | None = None, *, deep: bool = True) -> Probe:
    """``deep=False`` leaves the body's structure unchecked (``parses`` from the frame alone):
    for a new file, whose judgement does not use it, in the gate thread an open waits on."""
    if size is None:
        size = os.fstat(fd).st_size
    head = os.pread(fd, min(size, HEAD), 0) if size else b""
    tail = os.pread(fd, TAIL, max(0, size - TAIL)) if size > HEAD else head[-TAIL:]
    return probe_bytes(head, tail, size, lambda off, n: os.pread(fd, n, off), deep=deep)


def probe_path(path: str) -> Probe:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return probe_fd(fd)
    finally:
        os.close(fd)


def probe_bytes(head: bytes, tail: bytes, size: int,
                read_at: ReadAt | None = None, *, deep: bool = True) -> Probe:
    ftype = file_type(head)
    members = None
    if ftype in ("ooxml", "zip"):
        members = structure.zip_members(tail, size, read_at)
        if ftype == "zip" and structure.is_office_package(members):
            ftype = "ooxml"  # judged by its members, not their order
    if ftype in CONTAINERS:
        # Compressed or encoded already: their entropy and chunk sketch tell the detector
        # nothing (it compares type and structure for them), so they are not computed.
        parses = _parses(ftype, head, tail, size, read_at, members=members, deep=deep)
        return Probe(ftype, parses, -1.0, b"")
    return Probe(ftype=ftype,
                 parses=_parses(ftype, head, tail, size, read_at, members=members, deep=deep),
                 entropy=round(entropy(head[:SAMPLE]), 3),
                 fp=fingerprint(head, textual=ftype in ("text", "xml")))


def file_type(head: bytes) -> str:
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        name_len = struct.unpack_from("<H", head, 26)[0] if len(head) >= 30 else 0
        first = head[30:30 + name_len]
        return "ooxml" if first in (b"[Content_Types].xml", b"mimetype") else "zip"
    if head.startswith(b"PK\x05\x06"):
        return "zip"  # empty archive
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"  # legacy .doc/.xls
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if _is_pgp(head):
        return "pgp"
    if _is_text(head[:SAMPLE]):
        if head[:256].lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<?xml"):
            return "xml"
        return "base64" if _is_base64(head[:SAMPLE]) else "text"
    return "binary"


def _is_base64(sample: bytes) -> bool:
    """A long run of nothing but the base64 alphabet: encoded data, not a document."""
    if len(sample) < 512 or b" " in sample or b"," in sample:  # (outside the alphabet:
        return False                                           # prose and CSV, at once)
    body = sample.translate(None, b"\r\n")
    if len(body) < len(sample) * 0.95:  # lines shorter than ~40 characters: prose or CSV
        return False
    return not body.rstrip(b"=").translate(None, _B64)


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"


def _is_pgp(head: bytes) -> bool:
    """An OpenPGP message (RFC 4880, RFC 9580): armored, or binary starting with a packet
    whose first fields are all valid.

    A binary message opens with a PKESK (tag 1), signature (2), SKESK (3), one-pass signature
    (4) or compressed (8) packet. Checking only the packet tag and version byte let about one
    random file in 300 pass (and its overwrite then looked like a type change); every field
    below is checked as well, and compressed data must decompress.
    """
    if head.startswith(b"-----BEGIN PGP "):
        return True
    return _pgp_packet(head, _PGP_PACKETS)


def _pgp_packet(head: bytes, known: dict[int, Callable[[bytes], bool]]) -> bool:
    if len(head) < 4 or not head[0] & 0x80:
        return False
    if head[0] & 0x40:
        tag = head[0] & 0x3F
        first = head[1]
        body = 2 if first < 192 else 3 if first < 224 else 6 if first == 255 else 2
    else:
        tag = (head[0] >> 2) & 0x0F
        body = 1 + {0: 1, 1: 2, 2: 4, 3: 0}[head[0] & 0x03]
    packet = head[body:]
    if len(packet) < 4:
        return False
    check = known.get(tag)
    return check is not None and check(packet)


_PK_ENCRYPT = frozenset({1, 2, 16, 18, 25, 26})
_PK_SIGN = frozenset({1, 3, 17, 19, 22, 27, 28})
_HASHES = frozenset({1, 2, 3, 8, 9, 10, 11, 12, 14})
_SIG_TYPES = frozenset({0x00, 0x01, 0x02, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19, 0x1F, 0x20,
                        0x28, 0x30, 0x40, 0x50})
_SYMMETRIC = frozenset({1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13})


def _pkesk(p: bytes) -> bool:
    if p[0] == 3:
        return len(p) > 9 and p[9] in _PK_ENCRYPT
    return p[0] == 6 and p[1] in (0, 21, 33)


def _signature(p: bytes) -> bool:
    if p[0] in (2, 3):
        return p[1] == 5 and p[2] in _SIG_TYPES
    return p[0] in (4, 5, 6) and p[1] in _SIG_TYPES and p[2] in _PK_SIGN and p[3] in _HASHES


def _skesk(p: bytes) -> bool:
    if p[0] == 4:
        return p[1] in _SYMMETRIC and p[2] in (0, 1, 3, 4)
    return p[0] in (5, 6) and len(p) > 3 and p[2] in _SYMMETRIC and p[3] in (1, 2, 3)


def _one_pass(p: bytes) -> bool:
    return p[0] in (3, 6) and p[1] in _SIG_TYPES and p[2] in _HASHES and p[3] in _PK_SIGN


def _compressed(p: bytes) -> bool:
    algo, data = p[0], p[1:]
    if algo == 0:  # uncompressed: the signed message follows
        return _pgp_packet(data, _PGP_SIGNED)
    if algo == 3:
        return data.startswith(b"BZh")
    if algo == 2 and (((data[0] << 8) | data[1]) % 31 or data[0] & 0x0F != 8):
        return False
    if algo not in (1, 2):
        return False
    try:  # the start of the stream must inflate (random bytes fail within a few bytes)
        zlib.decompressobj(-15 if algo == 1 else 15).decompress(data[:1024], 4096)
    except zlib.error:
        return False
    return True


def _literal(p: bytes) -> bool:
    return p[0] in b"btulm8"


_PGP_PACKETS: dict[int, Callable[[bytes], bool]] = {
    1: _pkesk, 2: _signature, 3: _skesk, 4: _one_pass, 8: _compressed}
_PGP_SIGNED: dict[int, Callable[[bytes], bool]] = {2: _signature, 4: _one_pass, 11: _literal}


def _is_text(sample: bytes) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 4:  # not just a multibyte character cut at the end
            return False
    control = len(sample.translate(None, _NOT_CONTROL))
    return control <= len(sample) // 100


def _parses(ftype: str, head: bytes, tail: bytes, size: int, read_at: ReadAt | None, *,
            members: list[structure.Member] | None = None, deep: bool = True) -> bool:
    """The container's frame (end records, markers) and, given ``read_at`` and ``deep``, its
    whole body (``structure``): partial encryption keeps the frame and ruins the body."""
    frame_only = read_at
    if not deep:
        read_at = None
    if ftype in ("ooxml", "zip"):
        if not deep:
            return _zip_ok(tail, size, frame_only)
        if not _zip_ok(tail, size, read_at):
            return False
        return members is None or read_at is None or \
            structure.zip_intact(members, size, read_at)
    if ftype == "pdf":
        return b"%%EOF" in tail[-2048:] and \
            (read_at is None or structure.pdf_intact(tail, size, read_at))
    if ftype == "jpeg":
        return b"\xff\xd9" in tail[-64:] and \
            (read_at is None or structure.jpeg_intact(size, read_at))
    if ftype == "png":
        return b"IEND" in tail[-32:] and (read_at is None or structure.png_intact(size, read_at))
    if ftype == "gzip":
        return read_at is None or structure.gzip_intact(size, read_at)
    if ftype == "text":  # a text file with a binary end (or middle) is damaged
        if size <= len(head) and deep:
            read_at = lambda off, n: head[off:off + n]  # noqa: E731 - the whole file is here
        end_is_text = size <= SAMPLE or _is_text(tail[-SAMPLE:].lstrip(_CONTINUATION))
        return end_is_text and \
            (read_at is None or structure.text_intact(size, read_at, _is_text))
    return True


def _zip_ok(tail: bytes, size: int, read_at: ReadAt | None) -> bool:
    """The end-of-central-directory record is there and points at a central directory."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return False
    entries: int
    cd_size: int
    cd_offset: int
    entries, cd_size, cd_offset = struct.unpack_from("<10xHII", tail, at)
    if cd_offset == 0xFFFFFFFF:
        return True  # zip64: structure checked no further
    if entries == 0:
        return cd_size == 0
    if cd_offset + cd_size > size:
        return False
    if read_at is None:
        return True
    return bytes(read_at(cd_offset, 4)) == b"PK\x01\x02"


def entropy(sample: bytes) -> float:
    """Shannon entropy of ``sample``, bits per byte, over at most ``ENTROPY_BYTES`` of it
    taken evenly through it (every 4th byte of a 4 KiB sample). The byte histogram and the
    sum are Pillow's (a dependency of the reports' PDF renderer), in C: a ``Counter`` over
    the same 1,024 bytes took 27 us, a fifth of a small file's whole measurement. Random
    bytes measure 7.8 (7.95 over 4,096), text 4-5.5."""
    if not sample:
        return 0.0
    if len(sample) >= 2 * ENTROPY_BYTES:
        sample = sample[::len(sample) // ENTROPY_BYTES]
    return max(0.0, float(_gray(sample).entropy()))


def _gray(sample: bytes) -> Any:
    """``sample`` as a one-row 8-bit image, without a copy."""
    return _pil().frombuffer("L", (len(sample), 1), sample, "raw", "L", 0, 1)


@functools.cache
def _pil() -> Any:
    from PIL import Image  # on first use: a scan of an unchanged tree probes nothing

    return Image


def fingerprint(head: bytes, *, textual: bool = False) -> bytes:
    """A bottom-k sketch of the set of content-defined chunks of the window (the first
    ``FP_WINDOW`` bytes).

    FastCDC (a gear rolling hash, compiled) cuts where the content says, about every 640
    bytes, so an insertion disturbs only the chunks it touches and the cuts resynchronise
    after it; each chunk is named by its CRC-32 and the ``FP_K`` smallest are kept. A window
    shorter than ``FP_LINES_BELOW`` has too few chunks for that, and is sketched by its
    lines instead (the kind byte says which: sketches of two kinds do not compare).

    In a ``textual`` file, a chunk holding bytes that text never holds (ciphertext, in a
    text file whose head was kept) counts a piece per ``FP_PIECE`` bytes, not as one chunk:
    a window that is mostly ciphertext then shares next to nothing with its text version,
    where by chunk count the 4 KiB of a kept head would still be 5% of the window.
    """
    window = head[:FP_WINDOW]
    chunks: list[bytes] | list[memoryview]
    if len(window) < FP_LINES_BELOW:
        kind, chunks = FP_LINES, window.split(b"\n")
    else:
        kind, chunks = FP_CHUNKS, [c.data for c in _chunker().cut_buf(window)]
    if textual and structure.holds_non_text(window):
        chunks = [part for c in map(bytes, chunks) for part in _pieces(c)]
    hashes = set(map(zlib.crc32, chunks))
    hashes.discard(0)
    return bytes((kind,)) + array("I", sorted(hashes)[:FP_K]).tobytes()


def _pieces(chunk: bytes) -> list[bytes]:
    if not structure.holds_non_text(chunk):
        return [chunk]
    return [chunk[at:at + FP_PIECE] for at in range(0, len(chunk), FP_PIECE)]


@functools.cache
def _chunker() -> Any:
    from pyfastcdc import FastCDC  # imported on first use: a scan of an unchanged tree
                                   # probes nothing and does not pay for it
    return FastCDC(_CDC_AVG, min_size=_CDC_MIN, max_size=_CDC_MAX)


def warm() -> None:
    """Import the compiled parts now (FastCDC, Pillow: 10-20 ms): the daemon calls this as
    it starts, so the first file it judges, perhaps an attacker's, does not wait for them."""
    _chunker()
    _pil()


def fingerprint_current(fp: bytes) -> bool:
    """Whether ``fp`` is a sketch of this version (a kind byte, then uint32s), or empty.

    A baseline recorded before sketches had a kind byte holds bare newline-cut sketches
    (a multiple of 4 bytes): they do not compare with these, and ``similarity`` says None.
    """
    return not fp or (len(fp) % 4 == 1 and fp[0] in (FP_CHUNKS, FP_LINES))


def similarity(a: bytes, b: bytes) -> float | None:
    """Estimated Jaccard similarity of two sketches; None when either is too small to say,
    or they are of different kinds (a file that crossed ``FP_LINES_BELOW``, or a sketch
    recorded by an older version: unknown, not dissimilar)."""
    if len(a) < 17 or len(b) < 17 or a[0] != b[0] or not fingerprint_current(a) or \
            not fingerprint_current(b):  # fewer than 4 chunks, or not comparable
        return None
    sa, sb = set(array("I", a[1:])), set(array("I", b[1:]))
    union = heapq.nsmallest(FP_K, sa | sb)
    both = sum(1 for h in union if h in sa and h in sb)
    return both / len(union)
