"""The audit log's record format, forward-secure MAC keys and the streaming verifier (pure).

A record is one line of canonical JSON, fields in this order::

    {"seq":N,"time":"...Z","prev":"<sha256 of the previous line>","kind":"...",
     "actor":"...","data":{...},"mac":"<HMAC-SHA256 of the line without the mac field>"}

- ``prev`` chains each line to the one before (genesis: 64 zeros), so a deleted, inserted,
  re-ordered or replayed line breaks the chain, and ``seq`` must count up by one.
- The MAC of record ``i`` is keyed with ``K_i``; ``K_{i+1} = SHA-256("secops-audit-evolve"
  || K_i)``. The writer keeps only the current key and overwrites it after each record, so
  whoever steals today's key cannot compute yesterday's (Schneier-Kelsey). Only ``K_0``, kept
  in key escrow and off the server, lets a verifier recompute every key; a record re-MACed
  with a later key fails (journald's CVE-2023-31439 class).
- Checkpoints (seq, head hash) signed in a forward-secure key chain (``checkpoints.py``), and
  the off-site copies of them, catch tail truncation, rollback and re-chaining, which a chain
  alone cannot, without the escrowed key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from secops.pathtext import encode_tree

GENESIS_PREV = "0" * 64
MAX_RECORD = 4 << 20    # a record is a few KiB; nesting or size beyond this is an attack
EVOLVE = b"secops-audit-evolve"
KEY_ID = b"secops-audit-key-id"
_MAC_SEP = b',"mac":"'
_decode = msgspec.json.Decoder().decode


def evolve(key: bytes) -> bytes:
    return hashlib.sha256(EVOLVE + key).digest()


def key_at(initial: bytes, seq: int, start_seq: int = 0) -> bytes:
    key = initial
    for _ in range(seq - start_seq):
        key = evolve(key)
    return key


def key_id(initial: bytes) -> str:
    """Names the initial key (in the genesis record) without revealing it."""
    return hashlib.sha256(KEY_ID + initial).hexdigest()[:32]


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def encode(seq: int, time: str, prev: str, *, kind: str, actor: str, data: dict[str, Any],
           key: bytes) -> bytes:
    """One record line (without the newline). Ordinary text is written as it is; a string
    that is not UTF-8 (a file name, :mod:`secops.pathtext`) as ``b64:...``, so the line is
    UTF-8 JSON the verifier's decoder accepts."""
    body = json.dumps({"seq": seq, "time": time, "prev": prev, "kind": kind,
                       "actor": encode_tree(actor), "data": encode_tree(data)},
                      ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
    mac = hmac.digest(key, body, "sha256").hex()
    return body[:-1] + _MAC_SEP + mac.encode("ascii") + b'"}'


def split_mac(line: bytes) -> tuple[bytes, str] | None:
    """(the MAC'd body, the mac hex) or None when the line does not end with a mac field."""
    at = line.rfind(_MAC_SEP)
    if at < 0 or not line.endswith(b'"}') or len(line) - at != len(_MAC_SEP) + 64 + 2:
        return None
    return line[:at] + b"}", line[at + len(_MAC_SEP):-2].decode("ascii", "replace")


@dataclass
class ChainState:
    """Where verification stands after a record: enough to resume from there."""

    next_seq: int = 0
    prev: str = GENESIS_PREV
    key: bytes | None = None     # K_next_seq, when MACs are checked
    heads: dict[int, str] = field(default_factory=dict)  # seq -> hash, for checkpoints


@dataclass
class Problem:
    seq: int            # the first bad sequence number (where the log went wrong)
    kind: str           # malformed, sequence, chain, mac, truncated, checkpoint, rollback,
    #                     key_lost (verify.py)
    detail: str


class Verifier:
    """Feed lines in order; stops at the first problem.

    ``want_heads`` names the sequence numbers whose hashes the caller needs (checkpoints).
    """

    def __init__(self, state: ChainState | None = None,
                 want_heads: set[int] | None = None) -> None:
        self.state = state or ChainState()
        self.want_heads = want_heads or set()
        self.problem: Problem | None = None
        self.records = 0
        self.last_time: str | None = None
        self.key_lost: list[int] = []  # gap records: the MAC key state was lost there

    def feed(self, line: bytes) -> bool:
        """False once a problem is found (and from then on)."""
        if self.problem is not None:
            return False
        st = self.state
        seq = st.next_seq
        try:
            if len(line) > MAX_RECORD:
                raise ValueError(f"longer than {MAX_RECORD >> 20} MiB")
            rec = _decode(line)
            if not isinstance(rec, dict) or list(rec) != ["seq", "time", "prev", "kind",
                                                          "actor", "data", "mac"]:
                raise ValueError("fields missing, extra or out of order")
            got_seq = rec["seq"]
            if not isinstance(got_seq, int) or isinstance(got_seq, bool):
                raise ValueError("seq is not a number")
        except (ValueError, UnicodeDecodeError, msgspec.DecodeError, RecursionError) as e:
            return self._fail(seq, "malformed", f"record {seq} is not a valid audit record: {e}")
        if got_seq != seq:
            what = "a record is missing" if got_seq > seq else \
                "a record is repeated or out of order"
            return self._fail(seq, "sequence", f"expected record {seq}, found {got_seq}: {what}")
        if rec["prev"] != st.prev:
            return self._fail(seq, "chain", f"record {seq} does not follow record {seq - 1} "
                              "(previous-hash mismatch): inserted, removed or altered")
        parts = split_mac(line)
        if parts is None:
            return self._fail(seq, "malformed", f"record {seq} has no MAC at its end")
        data = rec["data"]
        gap = rec["kind"] == "audit.tampered" and isinstance(data, dict) and \
            data.get("problem") == "key_lost"
        if st.key is not None:
            body, mac = parts
            if hmac.compare_digest(hmac.digest(st.key, body, "sha256").hex(), mac):
                st.key = evolve(st.key)
            elif gap:
                st.key = None  # sealed under a new key from here on: the chain goes on
            else:
                return self._fail(seq, "mac", f"record {seq}: MAC does not match its key: "
                                  "altered, or re-sealed with another key")
        h = line_hash(line)
        if seq in self.want_heads:
            st.heads[seq] = h
        st.prev = h
        st.next_seq = seq + 1
        self.records += 1
        self.last_time = rec["time"]
        if gap:
            self.key_lost.append(seq)
        return True

    def _fail(self, seq: int, kind: str, detail: str) -> bool:
        self.problem = Problem(seq, kind, detail)
        return False
