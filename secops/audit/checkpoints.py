"""Signed checkpoints of the audit log, in a forward-secure chain of one-time keys (pure).

A checkpoint vouches for one record of the log: its sequence number and line hash. Checkpoint
``n`` is signed with checkpoint key ``n`` and names the public half of key ``n + 1``
(``next_key``); the writer destroys key ``n`` once checkpoint ``n`` is durable. Whoever holds
root on the server today therefore holds only the key of the *next* checkpoint: every
checkpoint already written stays unforgeable, so a record at or below one cannot be changed,
removed or re-chained without breaking it, even by someone who also holds the office keys.

Key 0, the chain's root, is made by ``secops init``. Checkpoint 0 carries the root's public
half (``root_key``) certified by the office Ed25519 key (``root_cert``), and the root is
exported with the office's public keys (``audit-root.pub``): a verifier that pins it detects
a chain re-made from scratch, which the office key alone cannot (whoever has root today has
the office key too). The server compares its root with the one named off-site in every
snapshot (tag ``audit-root:<id>``).

A line::

    {"v":2,"n":N,"seq":S,"head":"<sha256 of record S>","time":"...Z","log":"<office>",
     "prev":"<sha256 of checkpoint line N-1>","next_key":"<base64 raw Ed25519>",
     "key_id":"<id of key N>",["root_key":...,"root_cert":...,"office_key_id":...,]
     "sig":"<base64 Ed25519 by key N over the line without sig>"}
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = 2
ZERO = "0" * 64
ROOT_PURPOSE = "secops-audit-checkpoint-root"
_FIELDS = ("v", "n", "seq", "head", "time", "log", "prev", "next_key", "key_id")
_ROOT_FIELDS = ("root_key", "root_cert", "office_key_id")


def raw_public(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def key_id(raw: bytes) -> str:
    """The same short name as ``secops.keys.signature.key_id`` (first 16 hex of SHA-256)."""
    return hashlib.sha256(raw).hexdigest()[:16]


def line_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=True).encode("ascii")


def root_message(log: str, root_key: str, time: str) -> bytes:
    """What the office key signs to certify the chain's root."""
    return _canonical({"purpose": ROOT_PURPOSE, "log": log, "root_key": root_key,
                       "time": time})


@dataclass(frozen=True)
class Checkpoint:
    n: int
    seq: int
    head: str
    time: str
    log: str
    prev: str
    next_key: str
    key_id: str
    sig: bytes
    raw: bytes
    line_no: int
    root_key: str | None = None
    root_cert: bytes | None = None
    office_key_id: str | None = None

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"v": FORMAT, "n": self.n, "seq": self.seq, "head": self.head,
                               "time": self.time, "log": self.log, "prev": self.prev,
                               "next_key": self.next_key, "key_id": self.key_id}
        if self.root_key is not None:
            doc["root_key"] = self.root_key
            doc["root_cert"] = b64(self.root_cert or b"")
            doc["office_key_id"] = self.office_key_id
        return doc


def encode(*, n: int, seq: int, head: str, time: str, log: str, prev: str,
           signer: Ed25519PrivateKey, next_key: Ed25519PrivateKey,
           office_key: Ed25519PrivateKey | None = None) -> bytes:
    """One checkpoint line (no newline); ``office_key`` certifies the root (n == 0 only)."""
    doc: dict[str, Any] = {"v": FORMAT, "n": n, "seq": seq, "head": head, "time": time,
                           "log": log, "prev": prev, "next_key": b64(raw_public(next_key)),
                           "key_id": key_id(raw_public(signer))}
    if n == 0:
        if office_key is None:
            raise ValueError("checkpoint 0 needs the office key to certify the root")
        root = b64(raw_public(signer))
        doc["root_key"] = root
        doc["root_cert"] = b64(office_key.sign(root_message(log, root, time)))
        doc["office_key_id"] = key_id(raw_public(office_key))
    doc["sig"] = b64(signer.sign(_canonical(doc)))
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def parse(raw: bytes, line_no: int) -> Checkpoint:
    """One line; ValueError names what is wrong."""
    if len(raw) > 16 << 10:
        raise ValueError("longer than any checkpoint")
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    if d.get("v") != FORMAT:
        raise ValueError(f"format {d.get('v')!r}, expected {FORMAT}")
    root = "root_key" in d
    want = set(_FIELDS) | {"sig"} | (set(_ROOT_FIELDS) if root else set())
    if set(d) != want:
        raise ValueError(f"fields {sorted(set(d) ^ want)} missing or unexpected")
    try:
        n, seq = d["n"], d["seq"]
        if any(not isinstance(x, int) or isinstance(x, bool) for x in (n, seq)):
            raise ValueError("n and seq must be numbers")
        texts = [d[k] for k in ("head", "time", "log", "prev", "next_key", "key_id")]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("a text field is not text")
        sig = base64.b64decode(d["sig"], validate=True)
        cert = base64.b64decode(d["root_cert"], validate=True) if root else None
        base64.b64decode(d["next_key"], validate=True)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(str(e)) from None
    return Checkpoint(n, seq, d["head"], d["time"], d["log"], d["prev"], d["next_key"],
                      d["key_id"], sig, raw, line_no,
                      root_key=d["root_key"] if root else None, root_cert=cert,
                      office_key_id=d["office_key_id"] if root else None)


@dataclass
class ChainCheck:
    """What the checkpoint chain proves: ``trusted`` are the links that verified, in order;
    verification stops at the first broken link (``problem``)."""

    trusted: list[Checkpoint] = field(default_factory=list)
    problem: tuple[int, str] | None = None      # (the record it vouched for, what is wrong)
    root_key: str | None = None
    root_pinned: bool = False                   # the root matched a key the verifier brought
    root_certified: bool = False                # the office key's certificate was checked
    next_key: str | None = None                 # the key the next checkpoint must be signed by

    @property
    def root_id(self) -> str | None:
        return key_id(base64.b64decode(self.root_key)) if self.root_key else None


def _verify_sig(pub_b64: str, sig: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64)).verify(sig, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_chain(lines: Iterable[bytes], *, office_key: Ed25519PublicKey | None = None,
                 roots: Iterable[Ed25519PublicKey] = ()) -> ChainCheck:
    """Check every link from the root. ``office_key`` checks the root's certificate;
    ``roots`` are roots the verifier pins (e.g. ``audit-root.pub``): a chain from another
    root is a problem."""
    out = ChainCheck()
    pinned = {b64(raw_public(r)) for r in roots}
    office_id = key_id(raw_public(office_key)) if office_key is not None else None
    prev: Checkpoint | None = None
    for line_no, raw in enumerate(lines, 1):
        try:
            c = parse(raw, line_no)
        except ValueError as e:
            out.problem = (_vouched(prev), f"checkpoint line {line_no} is malformed: {e}")
            return out
        expected_n = 0 if prev is None else prev.n + 1
        where = f"checkpoint {c.n} (line {line_no}, record {c.seq})"
        if c.n != expected_n:
            what = "checkpoints are missing before it" if c.n > expected_n else \
                "it repeats or re-starts the chain"
            out.problem = (c.seq, f"{where}: expected checkpoint {expected_n}: {what}")
            return out
        if prev is None:
            problem = _check_root(c, where, pinned, office_key, office_id, out)
            if problem:
                out.problem = (c.seq, problem)
                return out
            signer = c.root_key or ""
        else:
            if c.root_key is not None:
                out.problem = (c.seq, f"{where}: a second chain root: the chain was re-started")
                return out
            if c.prev != line_hash(prev.raw):
                out.problem = (c.seq, f"{where} does not follow checkpoint {prev.n}: "
                               "an earlier checkpoint was altered or replaced")
                return out
            if c.seq < prev.seq:
                out.problem = (c.seq, f"{where} vouches for an earlier record than "
                               f"checkpoint {prev.n} (record {prev.seq}): out of order")
                return out
            signer = prev.next_key
        if not _verify_sig(signer, c.sig, _canonical(c.body())):
            out.problem = (c.seq, f"{where}: BAD SIGNATURE: not signed by the key the "
                           "previous checkpoint names (altered, or re-signed with "
                           "another key)")
            return out
        out.trusted.append(c)
        out.next_key = c.next_key
        prev = c
    return out


def _check_root(c: Checkpoint, where: str, pinned: set[str],  # noqa: PLR0917
                office_key: Ed25519PublicKey | None, office_id: str | None,
                out: ChainCheck) -> str | None:
    if c.root_key is None or c.prev != ZERO:
        return f"{where}: the first checkpoint does not start a chain (no root key)"
    out.root_key = c.root_key
    if pinned:
        if c.root_key not in pinned:
            return (f"{where}: the chain's root key "
                    f"{key_id(base64.b64decode(c.root_key))} is not the pinned audit root: "
                    "the checkpoints were re-made from scratch")
        out.root_pinned = True
    if office_key is not None:
        if c.office_key_id != office_id:
            return (f"{where}: the root was certified by another key ({c.office_key_id}), "
                    f"not the office key ({office_id})")
        try:
            office_key.verify(c.root_cert or b"", root_message(c.log, c.root_key, c.time))
        except InvalidSignature:
            return f"{where}: BAD SIGNATURE on the root's certificate by the office key"
        out.root_certified = True
    return None


def _vouched(prev: Checkpoint | None) -> int:
    return prev.seq + 1 if prev is not None else 0


def public_from_b64(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value))
