"""The audit log excerpt of an incident bundle: every record of the incident's span (from its
first evidence to its close, or to now while it is open), from one signed checkpoint to
another, with the checkpoint chain from its root to the closing checkpoint (a link cannot be
checked without the ones before it); checked as an excerpt by
``secops.audit.verify.verify_excerpt``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops.errors import SecopsError
from secops.layout import StateDir

_SEQ = re.compile(rb'^\{"seq":(-?\d+),')
_TIME = re.compile(rb'"time":"([^"]+)"')


@dataclass(frozen=True)
class _Checkpoint:
    raw: bytes
    seq: int
    ts: float


@dataclass
class Excerpt:
    lines: list[bytes]
    checkpoints: list[bytes]
    meta: dict[str, Any]


def audit_excerpt(state_dir: Path, office: str, incident_id: str, since: float,
                  until: float) -> Excerpt:
    """Every record from the last signed checkpoint before the incident's span (from its
    first evidence, ``since``) to the first one after it (``until``: its close, or now while
    open, and at least its last mention), with the checkpoint chain from its root up to the
    closing checkpoint (a link cannot be checked without the ones before it).

    The start is chosen by record number, not by time: a checkpoint signed in the same
    second as the incident's first record, but after it, would otherwise cut that record
    off (audit times are whole seconds)."""
    from secops.audit.chain import GENESIS_PREV
    from secops.audit.log import AuditLog

    fresh = AuditLog(state_dir, office).checkpoint()
    folder = StateDir(state_dir).audit
    cps = _read_checkpoints(folder / "checkpoints.jsonl")
    first, last_mention = _span_records(folder, incident_id.encode(), since)
    start_seq = max((c.seq for c in cps if 0 <= c.seq <= first), default=0)
    after = [c for c in cps if c.seq >= max(last_mention, start_seq)
             and c.ts >= math.floor(until)]
    end_seq = min(c.seq for c in after) if after else int(fresh["seq"])
    kept = [(seq, raw) for seq, _, raw in _records(folder) if start_seq <= seq <= end_seq]
    lines = [raw for _, raw in kept]
    prev = GENESIS_PREV
    if lines:
        start_seq = kept[0][0]
        with contextlib.suppress(ValueError, KeyError, TypeError):
            prev = str(json.loads(lines[0])["prev"])
    upto = next((i for i, c in enumerate(cps) if c.seq >= end_seq), len(cps) - 1)
    chain_lines = [c.raw for c in cps[:upto + 1]]
    meta = {"office": office, "incident": incident_id, "start_seq": start_seq, "prev": prev,
            "end_seq": end_seq, "records": len(lines),
            "checkpoint_seqs": sorted({c.seq for c in cps[:upto + 1]
                                       if start_seq <= c.seq <= end_seq})}
    return Excerpt(lines, chain_lines, meta)


def _records(folder: Path) -> Iterator[tuple[int, float | None, bytes]]:
    """(seq, time, line without its newline) of every complete record, in order."""
    from secops.audit.log import segments
    from secops.clock import parse_iso

    for path in segments(folder):
        with path.open("rb") as f:
            for raw in f:
                m = _SEQ.match(raw)
                if m is None or not raw.endswith(b"\n"):
                    continue
                t = _TIME.search(raw, 0, 200)
                yield int(m.group(1)), parse_iso(t.group(1).decode()) if t else None, raw[:-1]


def _span_records(folder: Path, needle: bytes, since: float) -> tuple[int, int]:
    """(the first record of the span or naming the incident, the last naming it)."""
    first, last = None, -1
    for seq, ts, raw in _records(folder):
        mentions = needle in raw
        if first is None and (mentions or (ts is not None and ts >= math.floor(since))):
            first = seq
        if mentions:
            last = seq
    return (first if first is not None else 0), max(last, 0)


def _read_checkpoints(path: Path) -> list[_Checkpoint]:
    """Every line of the checkpoint chain, in order (its time read for choosing ends)."""
    from secops.audit.checkpoints import parse
    from secops.clock import parse_iso as epoch

    out = []
    with contextlib.suppress(FileNotFoundError):
        for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
            if not raw:
                continue
            try:
                c = parse(raw, n)
            except ValueError:
                break  # a broken chain ends here; the verifier will say so
            ts = epoch(c.time)
            out.append(_Checkpoint(raw, c.seq, ts if ts is not None else 0.0))
    return out


def check_excerpt(audit_dir: Path, public_key_file: Path, roots: list[Path] | None = None
                  ) -> tuple[bool, str]:
    """The excerpt as ``secops audit verify --log audit/`` checks it: the records chain from
    their stated start, the checkpoint chain verifies from its root (certified by the office
    Ed25519 key; pinned when ``roots`` are given), and both ends are vouched for by a
    checkpoint. (ok, what was found)."""
    from secops.audit.verify import verify_excerpt
    from secops.keys.signature import load_public_key, public_key_id

    try:
        pub = load_public_key(public_key_file)
        pins = [load_public_key(p) for p in roots or []]
    except SecopsError as e:
        return False, f"the excerpt cannot be checked: {e}"
    rep = verify_excerpt(audit_dir, public_key=pub, roots=pins)
    if not rep.ok:
        return False, f"record {rep.first_bad_seq}: {rep.problem}: {rep.detail}"
    ex = rep.excerpt or {}
    root = f"root {rep.root_id} " + ("pinned" if rep.root_pinned else "not pinned")
    return True, (f"records {ex.get('start_seq')} to {ex.get('end_seq')} chained; "
                  f"{rep.checkpoints_verified} of them vouched for by checkpoints signed in a "
                  f"chain of {rep.checkpoints_chained} ({root}), its root certified by "
                  f"Ed25519 key {public_key_id(pub)}")
