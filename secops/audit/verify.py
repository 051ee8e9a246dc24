"""``secops audit verify``: the chain, the MACs (given K_0), the checkpoint chain (the office
public key certifies its root; a pinned ``audit-root.pub`` proves it is the original one), the
checkpoints' heads against the recomputed chain, and the newest checkpoint kept off-site
(against truncation and rollback).

It reads a copy as well as the live folder: the police run it on their own machine with
``--log``, the office public key, the audit root and, if the custodians open the escrow, the
initial key. An incident bundle's ``audit/`` folder is an *excerpt*: records from one signed
checkpoint to another, with the whole checkpoint chain (``verify_excerpt``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.audit import chain
from secops.audit import checkpoints as cps
from secops.audit.log import AUDIT_TAG, ROOT_TAG, segments

EXCERPT_META = "excerpt.json"
EXCERPT_LOG = "audit-excerpt.jsonl"


@dataclass
class Report:
    ok: bool = True
    records: int = 0
    first_bad_seq: int | None = None
    problem: str | None = None
    detail: str | None = None
    checkpoints_verified: int = 0       # checkpoints whose record was recomputed and matched
    checkpoints_chained: int = 0        # links of the checkpoint chain that verified
    root_id: str | None = None
    root_pinned: bool = False
    root_certified: bool = False
    unvouched_from: int | None = None   # first record no checkpoint vouches for yet
    newest_checkpoint: dict[str, Any] | None = None
    macs_checked: bool = False
    excerpt: dict[str, Any] | None = None
    offsite: dict[str, Any] = field(default_factory=dict)
    state: chain.ChainState | None = None
    chain_check: cps.ChainCheck | None = None
    # a last line cut off before it was sealed (a write that died: full disk, power loss):
    # {"seq", "bytes"}; the next write drops it and says so in the log
    partial_last_line: dict[str, int] | None = None

    def fail(self, seq: int, problem: str, detail: str) -> None:
        if self.ok or (self.first_bad_seq is not None and seq < self.first_bad_seq):
            self.ok, self.first_bad_seq, self.problem, self.detail = False, seq, problem, detail

    def as_json(self) -> dict[str, Any]:
        doc = {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq,
               "problem": self.problem, "detail": self.detail,
               "checkpoints_verified": self.checkpoints_verified,
               "checkpoints_chained": self.checkpoints_chained,
               "audit_root": self.root_id, "audit_root_pinned": self.root_pinned,
               "audit_root_certified": self.root_certified,
               "unvouched_from": self.unvouched_from,
               "newest_checkpoint": self.newest_checkpoint,
               "macs_checked": self.macs_checked, "offsite": self.offsite,
               "partial_last_line": self.partial_last_line}
        if self.excerpt is not None:
            doc["excerpt"] = self.excerpt
        return doc


def read_checkpoint_lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


@dataclass(frozen=True)
class Offsite:
    """What one backup target vouches for: the newest audit anchor and the chain root, and
    every anchor and root named in its snapshots' tags (each one is checked: a rewrite that
    a newer anchor would hide still contradicts an older one)."""

    seq: int | None = None
    head: str | None = None
    root: str | None = None
    anchors: tuple[tuple[int, str], ...] = ()
    roots: frozenset[str] = frozenset()


def verify(folder: Path, *, checkpoints: Path | None = None, public_key: Any = None,
           roots: Iterable[Any] = (), initial_key: bytes | None = None,
           offsite: dict[str, Offsite] | None = None, log_file: Path | None = None,
           start: chain.ChainState | None = None, live: bool = False) -> Report:
    """Verify a log folder (rotated segments + audit.jsonl), or a single ``log_file``.

    ``start`` begins after records not in hand (an excerpt): the state after the record
    before the first one present, with its key when MACs are checked.

    ``live``: the office's own log, whose key state ``check_key_state`` then checks. A last
    line of the current file cut off is noted, not failed: a write that died before it was
    sealed leaves one, and the key state tells it from a sealed record cut short (the key
    would have moved past it: "truncated"). In a copy it fails ("malformed").
    """
    first_seq = start.next_seq if start is not None else 0
    first = chain.ChainState(key=initial_key) if start is None else \
        chain.ChainState(start.next_seq, start.prev, start.key)
    report = Report(macs_checked=first.key is not None)
    lines = read_checkpoint_lines(checkpoints or folder / "checkpoints.jsonl")
    cc = cps.verify_chain(lines, office_key=public_key, roots=roots)
    report.chain_check = cc
    report.checkpoints_chained = len(cc.trusted)
    report.root_id, report.root_pinned, report.root_certified = \
        cc.root_id, cc.root_pinned, cc.root_certified
    offsite = offsite or {}
    want = {c.seq for c in cc.trusted} | \
        {seq for o in offsite.values() for seq, _ in o.anchors} | \
        {o.seq for o in offsite.values() if o.seq is not None}
    v = chain.Verifier(first, want_heads=want)
    _feed(report, v, [log_file] if log_file is not None else segments(folder), live=live)
    report.records = v.records
    report.state = v.state
    for seq in v.key_lost[:1]:
        report.fail(seq, "key_lost", f"record {seq} says the audit MAC key state was lost "
                    "there: the records from it on are sealed under a new key no escrow "
                    "holds (the hash chain and the signed checkpoints still vouch for them)")
    end = v.state.next_seq  # the first sequence number the log does not have
    if cc.problem is not None:
        report.fail(cc.problem[0], "checkpoint", cc.problem[1])
    _check_heads(report, cc.trusted, v.state.heads, first_seq=first_seq, end=end)
    _check_offsite(report, offsite, v.state.heads, first_seq=first_seq, end=end)
    if start is None and v.records and not lines:
        report.fail(0, "checkpoint", f"the log has {v.records} records but no checkpoint at "
                    "all (secops init signs the first one): checkpoints.jsonl was removed or "
                    "emptied")
    if cc.trusted:
        last = cc.trusted[-1]
        report.newest_checkpoint = {"n": last.n, "seq": last.seq, "time": last.time,
                                    "head": last.head[:16]}
    vouched = max((c.seq for c in cc.trusted if first_seq <= c.seq < end), default=None)
    nxt = first_seq if vouched is None else vouched + 1
    report.unvouched_from = nxt if nxt < end else None
    return report


def _feed(report: Report, v: chain.Verifier, files: list[Path], live: bool = False) -> None:
    for i, path in enumerate(files):
        try:
            data = path.read_bytes()
        except OSError as e:
            report.fail(v.state.next_seq, "malformed", f"{path}: {e.strerror}")
            return
        if data and not data.endswith(b"\n"):
            seq = v.state.next_seq + data.count(b"\n")
            cut = len(data) - data.rfind(b"\n") - 1
            if live and i == len(files) - 1 and path.name == "audit.jsonl":
                report.partial_last_line = {"seq": seq, "bytes": cut}
            else:
                report.fail(seq, "malformed", f"{path}: the last line is cut off")
            data = data[:data.rfind(b"\n") + 1]
        for line in data.split(b"\n")[:-1]:
            if not v.feed(line):
                break
        if v.problem is not None:
            report.fail(v.problem.seq, v.problem.kind, v.problem.detail)
            return


def _check_heads(report: Report, trusted: list[cps.Checkpoint], heads: dict[int, str], *,
                 first_seq: int, end: int) -> None:
    """Every trusted checkpoint's record must be the one recomputed from the log."""
    for c in trusted:
        if c.seq < first_seq:
            continue  # before the records in hand (an excerpt, or the empty log's -1)
        if c.seq >= end:
            report.fail(end, "truncated", f"signed checkpoint {c.n} vouches for record "
                        f"{c.seq}, but the log ends at record {end - 1}: records were cut "
                        "off")
            continue
        if heads.get(c.seq) != c.head:
            report.fail(c.seq, "checkpoint", f"record {c.seq} is not the one signed "
                        f"checkpoint {c.n} vouches for: altered, replaced or re-chained")
            continue
        report.checkpoints_verified += 1


def _check_offsite(report: Report, offsite: dict[str, Offsite], heads: dict[int, str], *,
                   first_seq: int, end: int) -> None:
    for target, o in sorted(offsite.items()):
        entry: dict[str, Any] = {"seq": o.seq, "head": o.head, "audit_root": o.root,
                                 "anchors_checked": 0}
        ok = True
        roots = set(o.roots) | ({o.root} if o.root else set())
        if len(roots) > 1:
            report.fail(0, "rollback", f"the snapshots on {target!r} name {len(roots)} "
                        f"different checkpoint roots ({', '.join(sorted(roots))}): the "
                        "checkpoints were re-made")
            ok = False
        elif roots and report.root_id is not None and report.root_id not in roots:
            report.fail(0, "rollback", f"the off-site copy on {target!r} names checkpoint "
                        f"root {roots.pop()}, but this log's checkpoints start from root "
                        f"{report.root_id}: the checkpoints were re-made")
            ok = False
        anchors = set(o.anchors) | ({(o.seq, o.head)} if o.seq is not None and o.head
                                    else set())
        for seq, head in sorted(anchors):
            if seq < first_seq:
                entry["note"] = "anchors before the records in hand"
            elif seq >= end:
                report.fail(end, "rollback", f"the off-site copy on {target!r} vouches for "
                            f"record {seq}, but this log ends at record {end - 1}: "
                            "truncated or rolled back")
                ok = False
            elif not heads.get(seq, "").startswith(head):
                report.fail(seq, "rollback", f"record {seq} differs from the copy kept "
                            f"off-site on {target!r}")
                ok = False
            else:
                entry["anchors_checked"] += 1
        entry["ok"] = ok
        report.offsite[target] = entry


def check_key_state(report: Report, state_dir: Path) -> None:
    """Both keys only move forward, in step with what they sealed: a MAC key gone past the
    log's end means records were cut off; a checkpoint key that does not follow the last
    checkpoint means checkpoints were removed, or the key was replaced or deleted."""
    from secops.audit.log import (
        checkpoint_key_path,
        key_state_path,
        last_checkpoint_line,
        one_batch,
        read_checkpoint_state,
    )
    from secops.errors import IntegrityError

    end = report.state.next_seq if report.state is not None else 0
    try:
        next_seq = int(json.loads(key_state_path(state_dir).read_text())["next_seq"])
    except (OSError, ValueError, KeyError, TypeError):
        report.fail(end, "truncated", f"the audit MAC key state {key_state_path(state_dir)} "
                    "is missing or unreadable: no record can be sealed")
        next_seq = end
    if next_seq > end:
        report.fail(end, "truncated", f"the MAC key has moved on to record {next_seq}, but "
                    f"the log ends at record {end - 1}: records were cut off")
    elif next_seq < end and not one_batch(state_dir / "audit" / "audit.jsonl", next_seq,
                                          end - 1):
        # a crash after a batch's fsync leaves the key that batch behind, never more
        report.fail(next_seq, "rollback", f"the audit MAC key state is at record {next_seq} "
                    f"but the log goes on to record {end - 1}, written at different times: "
                    "an earlier copy of the key state was put back")
    cc = report.chain_check
    if cc is None or cc.problem is not None:
        return  # the chain itself is already reported broken
    try:
        n, key, pending = read_checkpoint_state(checkpoint_key_path(state_dir))
    except IntegrityError as e:
        report.fail(end, "checkpoint", e.message)
        return
    last = cc.trusted[-1] if cc.trusted else None
    if last is None:
        in_step = n == 0 and last_checkpoint_line(state_dir / "audit" /
                                                  "checkpoints.jsonl") is None
    else:
        def pub(k: Any) -> str:
            return cps.b64(cps.raw_public(k))

        in_step = (n == last.n + 1 and pub(key) == last.next_key) or \
            (n == last.n and pending is not None and pub(pending) == last.next_key)
    if not in_step:
        report.fail(end, "checkpoint", f"the key of the next checkpoint (number {n}) does "
                    "not follow the last checkpoint in checkpoints.jsonl: checkpoints were "
                    "removed, or the key state was replaced")


def offsite_anchor(snapshots: list[Any]) -> Offsite:
    """Every audit anchor and chain root named in a target's snapshot tags."""
    anchors: set[tuple[int, str]] = set()
    roots: set[str] = set()
    for s in snapshots:
        for tag in s.tags:
            if tag.startswith(ROOT_TAG):
                roots.add(tag[len(ROOT_TAG):])
            if not tag.startswith(AUDIT_TAG):
                continue
            try:
                _, seq, head = tag.split(":")
                anchors.add((int(seq), head))
            except ValueError:
                continue
    best = max(anchors, default=None)
    return Offsite(best[0] if best else None, best[1] if best else None,
                   next(iter(roots)) if len(roots) == 1 else None,
                   tuple(sorted(anchors)), frozenset(roots))


# --- excerpts (incident bundles) ---------------------------------------------------------------

def is_excerpt(folder: Path) -> bool:
    """A bundle's audit/ folder: an excerpt and nothing else. A folder that also holds a log
    is checked as a log (an excerpt.json dropped beside a log must not hide it)."""
    return (folder / EXCERPT_META).is_file() and not (folder / "audit.jsonl").exists() and \
        not any(p.name != EXCERPT_LOG for p in folder.glob("audit-*.jsonl"))


def verify_excerpt(folder: Path, *, public_key: Any = None, roots: Iterable[Any] = (),
                   initial_key: bytes | None = None) -> Report:
    """An excerpt (``excerpt.json``, ``audit-excerpt.jsonl``, ``checkpoints.jsonl``): the
    records chain from the stated start, the checkpoint chain verifies from its root, and
    both ends of the excerpt are vouched for by a checkpoint (or the start is the genesis)."""
    try:
        meta = json.loads((folder / EXCERPT_META).read_text(encoding="utf-8"))
        start, prev, end = int(meta["start_seq"]), str(meta["prev"]), int(meta["end_seq"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        report = Report()
        report.fail(0, "malformed", f"{folder / EXCERPT_META} cannot be read: {e}")
        return report
    key = chain.key_at(initial_key, start) if initial_key is not None else None
    report = verify(folder, checkpoints=folder / "checkpoints.jsonl", public_key=public_key,
                    roots=roots, log_file=folder / EXCERPT_LOG,
                    start=chain.ChainState(start, prev, key))
    report.excerpt = {"start_seq": start, "end_seq": end, "incident": meta.get("incident")}
    last = report.state.next_seq - 1 if report.state is not None else start - 1
    if not report.ok:
        return report
    if last != end or report.records != end - start + 1:
        report.fail(last + 1, "truncated", f"the excerpt holds records {start} to {last}; "
                    f"{EXCERPT_META} says {start} to {end}")
        return report
    trusted = report.chain_check.trusted if report.chain_check else []
    seqs = {c.seq for c in trusted}
    before = [c for c in trusted if c.seq == start - 1]
    if any(c.head != prev for c in before):
        report.fail(start, "chain", f"the record before the excerpt ({start - 1}) is not the "
                    "one its signed checkpoint vouches for")
    elif end not in seqs:
        report.fail(end, "checkpoint", f"the last record of the excerpt ({end}) is not "
                    "vouched for by a signed checkpoint")
    elif start not in seqs and start - 1 not in seqs and \
            not (start == 0 and prev == chain.GENESIS_PREV):
        report.fail(start, "checkpoint", f"the first record of the excerpt ({start}) is not "
                    "vouched for by a signed checkpoint")
    report.unvouched_from = None
    return report
