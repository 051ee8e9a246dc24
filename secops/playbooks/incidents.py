"""Incidents in ``state_dir/state.db``: state, timeline, evidence, pinned snapshots, approvals.

States move forward only: open → contained → recovered → closed. A run of a playbook opens
an incident, or joins the open incident of the same playbook (a repeating alert). Its id
carries the office's local date (``INC-<office>-<yyyymmdd>-<n>``): the day a person reads in
the report, not the UTC one. The notices sent to the authorities are recorded here too
(``record_notice``), whichever playbook opened the incident.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from secops import database, pathtext
from secops.clock import iso_epoch
from secops.errors import UsageError
from secops.playbooks.model import STATES

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, playbook TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    state TEXT NOT NULL, opened REAL NOT NULL, updated REAL NOT NULL, closed REAL,
    event TEXT NOT NULL, acked_by TEXT, acked_at REAL
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (playbook, state);
CREATE TABLE IF NOT EXISTS incident_timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident TEXT NOT NULL, time REAL NOT NULL,
    what TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_evidence (
    incident TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, collected_at TEXT NOT NULL,
    PRIMARY KEY (incident, name)
);
CREATE TABLE IF NOT EXISTS incident_snapshots (
    incident TEXT NOT NULL, target TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    tagged INTEGER NOT NULL, PRIMARY KEY (incident, target, snapshot_id)
);
CREATE TABLE IF NOT EXISTS incident_approvals (
    incident TEXT NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL, prompt TEXT,
    requested REAL NOT NULL, expires REAL NOT NULL, decided REAL, by TEXT,
    PRIMARY KEY (incident, step)
);
CREATE TABLE IF NOT EXISTS incident_notices (
    incident TEXT NOT NULL, at REAL NOT NULL, to_whom TEXT NOT NULL, how TEXT NOT NULL,
    by TEXT NOT NULL, recorded REAL NOT NULL, actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trigger_hits (playbook TEXT NOT NULL, time REAL NOT NULL);
"""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_epoch(ts)


@dataclass(frozen=True)
class Incident:
    id: str
    playbook: str
    kind: str
    severity: str
    state: str
    opened: float
    updated: float
    closed: float | None
    event: dict[str, Any]
    acked_by: str | None

    def summary(self) -> dict[str, Any]:
        """The shape DESIGN.md fixes for ``incident list --json``."""
        return {"id": self.id, "kind": self.kind, "severity": self.severity,
                "state": self.state, "opened": _iso(self.opened), "playbook": self.playbook}


class IncidentStore:
    def __init__(self, db_path: Path, office: str) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.office = office
        self.state_dir = db_path.parent
        self._db = database.connect(db_path, timeout=30, check_same_thread=False, wal=True)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def folder(self, incident_id: str) -> Path:
        return self.state_dir / "incidents" / incident_id

    # -- opening and joining ---------------------------------------------------------------

    def open_or_join(self, playbook: str, event: dict[str, Any], severity: str,
                     per: Sequence[str] = ()) -> tuple[Incident, bool]:
        """(incident, True if new). An open incident of the same playbook is joined, when
        its first event agrees with ``event`` on the fields ``per`` (all, when none).

        One write transaction from the first read (``BEGIN IMMEDIATE``): two playbooks run
        on one event, each in its own thread and connection, never see the same free number;
        the number follows the highest one of the day (not a count, which a gap breaks).
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            want = _group(event, per)
            row = next((r for r in self._db.execute(
                "SELECT id, event FROM incidents WHERE playbook = ? AND state != 'closed' "
                "ORDER BY opened DESC", (playbook,))
                if not per or _group(pathtext.loads(r[1]), per) == want), None)
            now = time.time()
            if row is not None:
                self._add(row[0], now, "event.joined", {"event": event})
                self._db.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, row[0]))
                return self.get(row[0]), False
            day = datetime.fromtimestamp(now).astimezone().strftime("%Y%m%d")
            prefix = f"INC-{self.office}-{day}-"
            # substr, not LIKE: '_' (allowed in an office code) is a LIKE wildcard
            n = self._db.execute(
                "SELECT COALESCE(MAX(CAST(substr(id, ?) AS INTEGER)), 0) FROM incidents "
                "WHERE substr(id, 1, ?) = ?",
                (len(prefix) + 1, len(prefix), prefix)).fetchone()[0]
            incident_id = f"{prefix}{int(n) + 1:03d}"
            self._db.execute(
                "INSERT INTO incidents (id, playbook, kind, severity, state, opened, updated, "
                "event) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)",
                (incident_id, playbook, str(event.get("kind", "")), severity, now, now,
                 pathtext.dumps(event)))
            self._add(incident_id, now, "incident.opened", {"event": event,
                                                            "playbook": playbook})
        return self.get(incident_id), True

    def get(self, incident_id: str) -> Incident:
        r = self._db.execute(
            "SELECT id, playbook, kind, severity, state, opened, updated, closed, event, "
            "acked_by FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if r is None:
            raise UsageError(f"no incident {incident_id!r}",
                             hint="'secops incident list' shows them")
        return Incident(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], pathtext.loads(r[8]),
                        r[9])

    def all(self, include_closed: bool = True) -> list[Incident]:
        rows = self._db.execute("SELECT id FROM incidents ORDER BY opened DESC").fetchall()
        found = [self.get(r[0]) for r in rows]
        return found if include_closed else [i for i in found if i.state != "closed"]

    def open_count(self) -> int:
        return int(self._db.execute(
            "SELECT count(*) FROM incidents WHERE state != 'closed'").fetchone()[0])

    # -- changes ---------------------------------------------------------------------------

    def advance(self, incident_id: str, state: str, by: str) -> bool:
        """Move forward to ``state``; never back. True if the state changed."""
        cur = self.get(incident_id)
        if STATES.index(state) <= STATES.index(cur.state):
            return False
        now = time.time()
        with self._db:
            self._db.execute("UPDATE incidents SET state = ?, updated = ?, closed = ? "
                             "WHERE id = ?", (state, now, now if state == "closed" else None,
                                              incident_id))
            self._add(incident_id, now, "state", {"from": cur.state, "to": state, "by": by})
        return True

    def ack(self, incident_id: str, by: str) -> None:
        self.get(incident_id)
        now = time.time()
        with self._db:
            self._db.execute("UPDATE incidents SET acked_by = ?, acked_at = ?, updated = ? "
                             "WHERE id = ?", (by, now, now, incident_id))
            self._add(incident_id, now, "acknowledged", {"by": by})

    def note(self, incident_id: str, what: str, data: dict[str, Any]) -> None:
        with self._db:
            self._add(incident_id, time.time(), what, data)

    def _add(self, incident_id: str, when: float, what: str, data: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO incident_timeline (incident, time, what, data) "
                         "VALUES (?, ?, ?, ?)",
                         (incident_id, when, what, pathtext.dumps(data, default=str)))

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT time, what, data FROM incident_timeline WHERE "
                                "incident = ? ORDER BY id", (incident_id,)).fetchall()
        return [{"time": _iso(r[0]), "what": r[1], **pathtext.loads(r[2])} for r in rows]

    def add_evidence(self, incident_id: str, items: list[dict[str, Any]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO incident_evidence VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(incident_id, i["seq"], i["name"], i["kind"], i["sha256"], i["size"],
                  i["collected_at"]) for i in items])

    def evidence(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT seq, name, kind, sha256, size, collected_at FROM "
                                "incident_evidence WHERE incident = ? ORDER BY seq",
                                (incident_id,)).fetchall()
        return [{"seq": r[0], "name": r[1], "kind": r[2], "sha256": r[3], "size": r[4],
                 "collected_at": r[5]} for r in rows]

    def add_snapshot(self, incident_id: str, target: str, snapshot_id: str, tagged: bool
                     ) -> None:
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO incident_snapshots VALUES (?, ?, ?, ?)",
                             (incident_id, target, snapshot_id, int(tagged)))

    def snapshots(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT target, snapshot_id, tagged FROM incident_snapshots "
                                "WHERE incident = ?", (incident_id,)).fetchall()
        return [{"target": r[0], "snapshot_id": r[1], "tagged": bool(r[2])} for r in rows]

    # -- approvals -------------------------------------------------------------------------

    def request_approval(self, incident_id: str, step: str, prompt: str, ttl_s: float) -> None:
        now = time.time()
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO incident_approvals (incident, step, state, "
                             "prompt, requested, expires) VALUES (?, ?, 'waiting', ?, ?, ?)",
                             (incident_id, step, prompt, now, now + ttl_s))
            self._add(incident_id, now, "approval.requested",
                      {"step": step, "prompt": prompt, "expires": _iso(now + ttl_s)})

    def approval(self, incident_id: str, step: str) -> str | None:
        """waiting | approved | rejected | expired, or None when never requested."""
        r = self._db.execute("SELECT state, expires FROM incident_approvals WHERE incident = ? "
                             "AND step = ?", (incident_id, step)).fetchone()
        if r is None:
            return None
        if r[0] == "waiting" and time.time() >= r[1]:
            with self._db:
                self._db.execute("UPDATE incident_approvals SET state = 'expired', decided = ? "
                                 "WHERE incident = ? AND step = ? AND state = 'waiting'",
                                 (time.time(), incident_id, step))
                self._add(incident_id, time.time(), "approval.expired", {"step": step})
            return "expired"
        return str(r[0])

    def decide(self, incident_id: str, step: str, approve: bool, by: str) -> None:
        self.get(incident_id)
        state = self.approval(incident_id, step)
        if state is None:
            raise UsageError(f"incident {incident_id} has no approval step {step!r} waiting")
        if state != "waiting":
            raise UsageError(f"approval {step!r} of {incident_id} is already {state}")
        decision = "approved" if approve else "rejected"
        now = time.time()
        with self._db:
            self._db.execute("UPDATE incident_approvals SET state = ?, decided = ?, by = ? "
                             "WHERE incident = ? AND step = ?",
                             (decision, now, by, incident_id, step))
            self._add(incident_id, now, f"approval.{decision}", {"step": step, "by": by})

    def approvals(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT step, state, prompt, requested, expires, decided, by "
                                "FROM incident_approvals WHERE incident = ?",
                                (incident_id,)).fetchall()
        return [{"step": r[0], "state": r[1], "prompt": r[2], "requested": _iso(r[3]),
                 "expires": _iso(r[4]), "decided": _iso(r[5]), "by": r[6]} for r in rows]

    # -- notices to the authorities ---------------------------------------------------------

    def record_notice(self, incident_id: str, *, at: float, to: str, how: str, by: str,
                      actor: str) -> dict[str, Any]:
        """That the notice went out: ``at`` (epoch), to whom, how (the letter's number, the
        portal, a phone call), by whom; ``actor`` is who recorded it. Closed incidents too."""
        self.get(incident_id)
        now = time.time()
        with self._db:
            self._db.execute("INSERT INTO incident_notices VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (incident_id, at, to, how, by, now, actor))
            self._db.execute("UPDATE incidents SET updated = ? WHERE id = ?",
                             (now, incident_id))
            notice = {"at": _iso(at), "to": to, "how": how, "by": by, "actor": actor}
            self._add(incident_id, now, "notice.recorded", notice)
        return notice

    def notices(self, incident_id: str) -> list[dict[str, Any]]:
        """The recorded notices, the earliest sent first."""
        rows = self._db.execute("SELECT at, to_whom, how, by, recorded, actor FROM "
                                "incident_notices WHERE incident = ? ORDER BY at, recorded",
                                (incident_id,)).fetchall()
        return [{"at": _iso(r[0]), "to": r[1], "how": r[2], "by": r[3],
                 "recorded": _iso(r[4]), "actor": r[5]} for r in rows]

    # -- thresholds ------------------------------------------------------------------------

    def hit(self, playbook: str, window_s: float) -> int:
        """Record a matching event; the number of hits within the window, this one included."""
        now = time.time()
        with self._db:
            self._db.execute("DELETE FROM trigger_hits WHERE time < ?", (now - 7 * 86400,))
            self._db.execute("INSERT INTO trigger_hits VALUES (?, ?)", (playbook, now))
            n = self._db.execute("SELECT count(*) FROM trigger_hits WHERE playbook = ? AND "
                                 "time >= ?", (playbook, now - window_s)).fetchone()[0]
        return int(n)

    def reset_hits(self, playbook: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM trigger_hits WHERE playbook = ?", (playbook,))


def _group(event: dict[str, Any], per: Sequence[str]) -> list[str]:
    """The values of ``per`` in ``event`` (a missing one is its own value)."""
    from secops.playbooks.engine import UnknownValue, lookup  # the engine imports this module

    out = []
    for dotted in per:
        try:
            value = lookup(event, dotted)
        except UnknownValue:
            value = None
        out.append(json.dumps(value, sort_keys=True, default=str))
    return out
