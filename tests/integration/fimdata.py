"""Files as the integrity monitor sees them, in memory: a probe, a baseline record, and the
attacker's AES-256-CTR (for the detector's unit tests)."""

from __future__ import annotations

import hashlib
import os

from secops.fim.baseline import Record
from secops.fim.probe import HEAD, TAIL, Probe, probe_bytes


def probe(data: bytes) -> Probe:
    """What the daemon's probe says of ``data`` (head, tail and the body through pread)."""
    return probe_bytes(data[:HEAD], data[-TAIL:], len(data), lambda off, n: data[off:off + n])


def record(path: str, data: bytes, inode: int = 1) -> Record:
    p = probe(data)
    return Record(path, len(data), 1, 1, inode, 0o100644, 0, 0,
                  hashlib.sha256(data).hexdigest(), p.ftype, p.parses, p.entropy, p.fp)


def encrypt(data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
    return enc.update(data) + enc.finalize()
