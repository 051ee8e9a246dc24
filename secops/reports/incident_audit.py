"""What the audit log says about an incident, for its report: the records that name it, and
the acts of the same time span that do not (a restore or an unfreeze from the command line,
the monitor's freeze, a maintenance window). ``read`` does the I/O (best effort: [] when the
log cannot be read); the rest is pure.

The span runs from the incident's first evidence to its close (or to now while it is open):
the same span the bundle's audit excerpt covers (``excerpt.audit_excerpt``), so every act
the report counts is in the excerpt the police check.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from secops.clock import parse_iso
from secops.pathtext import decode_tree

# acts that belong to an incident by their time, not by naming it
SPAN_KINDS = ("restore.completed", "restore.mismatch", "integrity.unfrozen",
              "maintenance.started", "maintenance.stopped")
FREEZE_KIND = "integrity.frozen"     # the monitor's freeze: by its freeze id
_PREFILTER = tuple(f'"kind":"{k}"'.encode() for k in (*SPAN_KINDS, FREEZE_KIND))


def read(state_dir: Path, incident_id: str, since: float, until: float
         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the records that name the incident, the span's other acts and freezes)."""
    from secops.audit.log import segments

    needle = incident_id.encode()
    named: list[dict[str, Any]] = []
    span: list[dict[str, Any]] = []
    for path in segments(state_dir / "audit"):
        try:
            with path.open("rb") as f:
                for line in f:
                    mentions = needle in line
                    if not mentions and not any(k in line for k in _PREFILTER):
                        continue
                    rec = _parse(line)
                    if rec is None:
                        continue
                    data = rec.get("data")
                    if mentions and isinstance(data, dict) and data.get("incident") == \
                            incident_id:
                        named.append(rec)
                    elif not mentions and in_span(rec, since, until):
                        span.append(rec)
        except OSError:
            continue
    return named, span


def _parse(line: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        rec = json.loads(line)
        if isinstance(rec, dict):
            return dict(decode_tree(rec))  # a file name that is not UTF-8: as it is on disk
    return None


def in_span(rec: dict[str, Any], since: float, until: float) -> bool:
    """Audit times are whole seconds: the span's ends are widened to theirs."""
    ts = parse_iso(rec.get("time"))
    return ts is not None and math.floor(since) <= ts <= math.ceil(until)


def details(rec: dict[str, Any]) -> dict[str, Any]:
    """An event record's details (``data.details``), a command's record's data."""
    data = rec.get("data") or {}
    inner = data.get("details") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else data if isinstance(data, dict) else {}


def freeze_ids(event: dict[str, Any], timeline: list[dict[str, Any]]) -> set[int]:
    """The freezes that contained this incident: the monitor's (its event says which) and
    the playbook's own ``freeze`` step."""
    found = {(event.get("details") or {}).get("freeze_id")}
    found |= {(t.get("outputs") or {}).get("freeze_id") for t in timeline
              if t.get("what") == "step" and isinstance(t.get("outputs"), dict)}
    return {int(f) for f in found if isinstance(f, int)}


def acts(span: list[dict[str, Any]], freezes: set[int]) -> list[dict[str, Any]]:
    """The span's records that belong to the incident: its freezes and their release, and
    the restores and maintenance windows of its time."""
    out = []
    for rec in span:
        kind, d = rec.get("kind"), details(rec)
        if kind in (FREEZE_KIND, "integrity.unfrozen") and d.get("freeze_id") not in freezes:
            continue
        out.append(rec)
    return out


def restores(span_acts: list[dict[str, Any]], resolve: Any) -> list[dict[str, Any]]:
    """The restores into the live folders (``secops restore --in-place``) of the span, with
    their snapshot ids as they are now."""
    out = []
    for rec in span_acts:
        d = details(rec)
        if rec.get("kind") not in ("restore.completed", "restore.mismatch") or \
                not d.get("in_place"):
            continue
        target = str(d.get("target") or "")
        out.append({"time": rec.get("time"), "step": None, "by": rec.get("actor"),
                    "ok": rec.get("kind") == "restore.completed", "target": target,
                    "snapshot": resolve(target, str(d.get("snapshot_id") or "")),
                    "safety_snapshot": resolve(target, str(d.get("safety_snapshot") or "")),
                    "files_checked": d.get("files_checked"), "in_place": True})
    return out


def first_freeze(span_acts: list[dict[str, Any]], freeze_started: dict[int, float]
                 ) -> float | None:
    """When the incident was first frozen: the freeze's own start time (state.db), else
    its audit record's."""
    times = []
    for rec in span_acts:
        if rec.get("kind") == FREEZE_KIND:
            fid = details(rec).get("freeze_id")
            ts = freeze_started.get(fid) if isinstance(fid, int) else None
            times.append(ts if ts is not None else parse_iso(rec.get("time")))
    times += list(freeze_started.values())
    found = [t for t in times if t is not None]
    return min(found) if found else None


def freeze_times(db_path: Path, ids: set[int]) -> dict[int, float]:
    """The start time of each freeze in ``ids`` (best effort)."""
    import sqlite3

    from secops.database import connect

    out: dict[int, float] = {}
    if not ids or not db_path.exists():
        return out
    with contextlib.suppress(sqlite3.Error):
        db = connect(db_path, timeout=5)
        try:
            for fid in sorted(ids):
                row = db.execute("SELECT started FROM freezes WHERE id = ?", (fid,)).fetchone()
                if row is not None:
                    out[fid] = float(row[0])
        finally:
            db.close()
    return out
