"""``secops audit verify``: the chain, the MACs (given K_0), the signed checkpoints (public
key only) and the newest checkpoint kept off-site (against truncation and rollback).

It reads a copy as well as the live folder: the police run it on their own machine with
``--log``, the office public key and, if the custodians open the escrow, the initial key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.audit import chain
from secops.audit.log import segments

AUDIT_TAG = "audit:"  # snapshot tag "audit:<seq>:<head, 32 hex>"


@dataclass
class Report:
    ok: bool = True
    records: int = 0
    first_bad_seq: int | None = None
    problem: str | None = None
    detail: str | None = None
    checkpoints_verified: int = 0
    macs_checked: bool = False
    offsite: dict[str, Any] = field(default_factory=dict)
    state: chain.ChainState | None = None

    def fail(self, seq: int, problem: str, detail: str) -> None:
        if self.ok or (self.first_bad_seq is not None and seq < self.first_bad_seq):
            self.ok, self.first_bad_seq, self.problem, self.detail = False, seq, problem, detail

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq,
                "problem": self.problem, "detail": self.detail,
                "checkpoints_verified": self.checkpoints_verified,
                "macs_checked": self.macs_checked, "offsite": self.offsite}


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    time: str
    log: str
    key_id: str
    sig: bytes
    line_no: int


def read_checkpoints(path: Path, report: Report) -> list[Checkpoint]:
    out: list[Checkpoint] = []
    if not path.exists():
        return out
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw:
            continue
        try:
            d = json.loads(raw)
            out.append(Checkpoint(int(d["seq"]), str(d["head"]), str(d["time"]), str(d["log"]),
                                  str(d["key_id"]), base64.b64decode(d["sig"], validate=True),
                                  n))
        except (ValueError, KeyError, TypeError):
            report.fail(0, "checkpoint", f"{path}: line {n} is not a checkpoint")
    return out


def verify(folder: Path, *, checkpoints: Path | None = None, public_key: Any = None,
           initial_key: bytes | None = None, offsite: dict[str, tuple[int, str]] | None = None,
           log_file: Path | None = None, start: chain.ChainState | None = None) -> Report:
    """Verify a log folder (rotated segments + audit.jsonl), or a single ``log_file``.

    ``start`` resumes after records already verified (the daemon's incremental check): the
    state after the last good record, with its key when MACs are checked.
    """
    report = Report(macs_checked=initial_key is not None or (start is not None and
                                                             start.key is not None))
    cps = read_checkpoints(checkpoints or folder / "checkpoints.jsonl", report)
    offsite = offsite or {}
    want = {c.seq for c in cps} | {seq for seq, _ in offsite.values()}
    first = chain.ChainState(key=initial_key) if start is None else \
        chain.ChainState(start.next_seq, start.prev, start.key)
    v = chain.Verifier(first, want_heads=want)
    files = [log_file] if log_file is not None else segments(folder)
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as e:
            report.fail(v.state.next_seq, "malformed", f"{path}: {e.strerror}")
            break
        if data and not data.endswith(b"\n"):
            report.fail(v.state.next_seq + data.count(b"\n"), "malformed",
                        f"{path}: the last line is cut off")
            data = data[:data.rfind(b"\n") + 1]
        for line in data.split(b"\n")[:-1]:
            if not v.feed(line):
                break
        if v.problem is not None:
            break
    if v.problem is not None:
        report.fail(v.problem.seq, v.problem.kind, v.problem.detail)
    report.records = v.records
    report.state = v.state
    end = v.state.next_seq  # first sequence number the log does not have
    _check_checkpoints(report, cps, v.state, end=end, public_key=public_key,
                       from_seq=first.next_seq)
    for target, (seq, head) in sorted(offsite.items()):
        entry: dict[str, Any] = {"seq": seq, "head": head}
        if seq < first.next_seq:
            entry["ok"] = True  # verified before this resumed run
        elif seq >= end:
            report.fail(end, "rollback", f"the off-site copy on {target!r} vouches for record "
                        f"{seq}, but this log ends at record {end - 1}: truncated or rolled "
                        "back")
            entry["ok"] = False
        elif seq in v.state.heads and not v.state.heads[seq].startswith(head):
            report.fail(seq, "rollback", f"record {seq} differs from the copy kept off-site "
                        f"on {target!r}")
            entry["ok"] = False
        else:
            entry["ok"] = seq in v.state.heads
        report.offsite[target] = entry
    return report


def _check_checkpoints(report: Report, cps: list[Checkpoint], state: chain.ChainState, *,
                       end: int, public_key: Any, from_seq: int) -> None:
    from cryptography.exceptions import InvalidSignature

    from secops.keys.signature import public_key_id

    office_id = public_key_id(public_key) if public_key is not None else None
    for c in cps:
        if public_key is not None:
            if c.key_id != office_id:
                report.fail(c.seq, "checkpoint", f"checkpoint {c.line_no} was signed by "
                            f"another key ({c.key_id}), not the office key ({office_id})")
                continue
            try:
                public_key.verify(c.sig, chain.checkpoint_message(c.log, c.seq, c.head, c.time))
            except InvalidSignature:
                report.fail(c.seq, "checkpoint", f"checkpoint {c.line_no} (record {c.seq}): "
                            "BAD SIGNATURE")
                continue
        if c.seq < from_seq:
            report.checkpoints_verified += 1  # its record was verified in an earlier run
            continue
        if c.seq >= end:
            report.fail(end, "truncated", f"a signed checkpoint vouches for record {c.seq}, "
                        f"but the log ends at record {end - 1}: records were cut off")
            continue
        if c.seq >= 0 and state.heads.get(c.seq) != c.head:
            report.fail(c.seq, "checkpoint", f"record {c.seq} is not the one its signed "
                        "checkpoint vouches for")
            continue
        report.checkpoints_verified += 1


def offsite_heads(snapshots: list[Any]) -> tuple[int, str] | None:
    """The highest audit checkpoint named in the tags of a target's snapshots."""
    best: tuple[int, str] | None = None
    for s in snapshots:
        for tag in s.tags:
            if not tag.startswith(AUDIT_TAG):
                continue
            try:
                _, seq, head = tag.split(":")
                n = int(seq)
            except ValueError:
                continue
            if best is None or n > best[0]:
                best = (n, head)
    return best
