"""The daemon's durable state in ``state_dir/state.db`` (SQLite, WAL).

- ``pending``: changed paths not yet in every target (written before a change counts as
  handled, so ``kill -9`` loses nothing the rescan would not find again);
- ``changes``: the time of the last change seen;
- ``targets``: per target, the start time of its last successful backup (``synced_at``),
  failures and retry schedule;
- ``events``: alerts for ``secops status`` (and, later, the playbooks);
- ``daemon``: pid and heartbeat, so ``secops status`` knows whether the daemon runs; the
  integrity monitor's state (running, or stopped and why).

Paths (``pending``, event details) are stored through :mod:`secops.pathtext`: a file name
that is not UTF-8 is kept exactly, as ``b64:...``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops import database, pathtext

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (path TEXT PRIMARY KEY, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS targets (
    name TEXT PRIMARY KEY,
    synced_at REAL,
    last_ok_time TEXT,
    last_snapshot_id TEXT,
    last_error TEXT,
    failing_since REAL,
    next_retry REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    alerted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS backups (
    target TEXT NOT NULL, snapshot_id TEXT NOT NULL, started REAL NOT NULL, finished REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS backups_by_target ON backups (target, finished);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    severity TEXT NOT NULL, details TEXT NOT NULL
);
"""


@dataclass
class TargetState:
    name: str
    synced_at: float | None
    last_ok_time: str | None
    last_snapshot_id: str | None
    last_error: str | None
    failing_since: float | None
    next_retry: float | None
    attempts: int
    alerted: bool


class StateDB:
    """``office``: the office code; when given, every event and backup result is also
    written to the audit log beside the database (``state_dir/audit``)."""

    def __init__(self, path: Path, office: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.office = office
        self.db = database.connect(path, timeout=30, check_same_thread=False, wal=True)
        # WAL + NORMAL survives a killed process; after a power loss the start-up rescan
        # finds what the last transactions held.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.audit_disabled = False  # audit.disabled raised, until a record is sealed again

    def close(self) -> None:
        self.db.close()

    def quick_check(self) -> str | None:
        """SQLite's ``PRAGMA quick_check``: None when the database is sound, else what it
        found (its first lines)."""
        try:
            rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as e:
            return str(e)
        return None if rows == ["ok"] else "; ".join(rows)

    # -- changes ---------------------------------------------------------------------------

    def record_changes(self, paths: Iterable[str], when: float, *, stamp: bool = False
                       ) -> int:
        """``stamp``: ``when`` is the wall time now, ordered by :meth:`stamp` in the same
        transaction (one commit per drained burst, on the path an honest save waits for)."""
        encoded = [pathtext.encode(p) for p in paths]
        if not encoded:
            return 0
        with self.db:
            if stamp:
                when = self._next_stamp(when)
            rows = [(p, when) for p in encoded]
            self.db.executemany(
                "INSERT INTO pending VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET "
                "last_seen = excluded.last_seen", rows)
            self._set("last_change", str(when))
        return len(rows)

    def stamp(self, now: float) -> float:
        """A time to order changes and backup starts by (``pending``, ``last_change``,
        ``synced_at``): ``now``, or a hair after the last stamp when the wall clock has
        stepped back since, so a change made after a backup never looks older than it and is
        never skipped (a backward step of an hour stopped every backup for that hour)."""
        with self.db:
            return self._next_stamp(now)

    def _next_stamp(self, now: float) -> float:
        last = float(self._get("stamp") or 0.0)
        when = now if now > last else last + 0.001
        self._set("stamp", repr(when))
        return when

    def last_change(self) -> float:
        v = self._get("last_change")
        return float(v) if v else 0.0

    def pending_count(self) -> int:
        synced = self.min_synced()
        row = self.db.execute("SELECT COUNT(*) FROM pending WHERE last_seen > ?",
                              (synced,)).fetchone()
        return int(row[0])

    def min_synced(self) -> float:
        row = self.db.execute("SELECT MIN(COALESCE(synced_at, 0)) FROM targets").fetchone()
        return float(row[0] or 0.0)

    def prune_pending(self) -> None:
        with self.db:
            self.db.execute("DELETE FROM pending WHERE last_seen <= ?", (self.min_synced(),))

    # -- targets ---------------------------------------------------------------------------

    def ensure_targets(self, names: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO targets (name) VALUES (?)",
                                [(n,) for n in names])

    def target(self, name: str) -> TargetState:
        row = self.db.execute(
            "SELECT name, synced_at, last_ok_time, last_snapshot_id, last_error, "
            "failing_since, next_retry, attempts, alerted FROM targets WHERE name = ?",
            (name,)).fetchone()
        if row is None:
            return TargetState(name, None, None, None, None, None, None, 0, False)
        return TargetState(name=row[0], synced_at=row[1], last_ok_time=row[2],
                           last_snapshot_id=row[3], last_error=row[4], failing_since=row[5],
                           next_retry=row[6], attempts=int(row[7]), alerted=bool(row[8]))

    def target_ok(self, name: str, started: float, time_iso: str, snapshot_id: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE targets SET synced_at = MAX(COALESCE(synced_at, 0), ?), "
                "last_ok_time = ?, last_snapshot_id = ?, last_error = NULL, "
                "failing_since = NULL, next_retry = NULL, attempts = 0, alerted = 0 "
                "WHERE name = ?", (started, time_iso, snapshot_id, name))

    def backup_taken(self, target: str, snapshot_id: str, started: float, finished: float
                     ) -> None:
        with self.db:
            self.db.execute("INSERT INTO backups VALUES (?, ?, ?, ?)",
                            (target, snapshot_id, started, finished))

    def last_backup_before(self, target: str, when: float) -> tuple[str, float, float] | None:
        """The newest snapshot whose backup had *finished* before ``when``:
        (snapshot id, started, finished)."""
        row = self.db.execute(
            "SELECT snapshot_id, started, finished FROM backups WHERE target = ? AND "
            "finished < ? ORDER BY finished DESC LIMIT 1", (target, when)).fetchone()
        return (str(row[0]), float(row[1]), float(row[2])) if row else None

    def target_failed(self, name: str, now: float, error: str, next_retry: float) -> None:
        with self.db:
            self.db.execute(
                "UPDATE targets SET last_error = ?, failing_since = COALESCE(failing_since, ?), "
                "next_retry = ?, attempts = attempts + 1 WHERE name = ?",
                (error, now, next_retry, name))

    def mark_alerted(self, name: str) -> None:
        with self.db:
            self.db.execute("UPDATE targets SET alerted = 1 WHERE name = ?", (name,))

    # -- events, daemon --------------------------------------------------------------------

    def add_event(self, time_iso: str, kind: str, source: str, severity: str,
                  details: dict[str, Any]) -> None:
        self._insert_event(time_iso, kind, source, severity, details)
        self.audit(kind, source, {"severity": severity, "details": details})

    def _insert_event(self, time_iso: str, kind: str, source: str, severity: str,
                      details: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("INSERT INTO events (time, kind, source, severity, details) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (time_iso, kind, source, severity,
                             pathtext.dumps(details)))

    def audit(self, kind: str, actor: str, data: dict[str, Any]) -> None:
        """Into the audit log, when this database belongs to an office; never fatal. A log
        that cannot be sealed (its key state gone or unreadable) is ``audit.disabled``, and
        what its writer found wrong (records cut off, the key rolled back) is
        ``audit.tampered``: events, alerted, never only a line on stderr."""
        if self.office is None:
            return
        from secops.audit import actor_cli, record
        from secops.errors import IntegrityError, SecopsError

        try:
            record(self.path.parent, self.office, kind, data,
                   actor_cli() if actor == "cli" else actor,
                   on_tampered=lambda found: self._audit_alert("audit.tampered", found))
        except IntegrityError as e:
            sys.stderr.write(f"secops: cannot write the audit log: {e}\n")
            if not self.audit_disabled:
                self.audit_disabled = True  # once per episode
                self._audit_alert("audit.disabled", {"error": e.message, "lost": kind})
            return
        except (SecopsError, OSError) as e:
            sys.stderr.write(f"secops: cannot write the audit log: {e}\n")
            return
        self.audit_disabled = False

    def _audit_alert(self, kind: str, details: dict[str, Any]) -> None:
        from secops.clock import iso_epoch

        paths = [str(self.path.parent / "audit" / "audit.jsonl")]
        first_bad = details.get("records_missing_from", details.get("key_was_at"))
        try:
            self._insert_event(iso_epoch(time.time()), kind, "secops", "critical",
                               {"first_bad_seq": first_bad, **details, "paths": paths})
        except sqlite3.Error as e:
            sys.stderr.write(f"secops: cannot record {kind}: {e}\n")

    def last_event_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def events_after(self, event_id: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Events newer than ``event_id`` in order, as (id, DESIGN.md event object)."""
        rows = self.db.execute("SELECT id, time, kind, source, severity, details FROM events "
                               "WHERE id > ? ORDER BY id LIMIT ?", (event_id, limit)).fetchall()
        return [(int(r[0]), {"kind": r[2], "time": r[1], "source": r[3], "severity": r[4],
                             "details": pathtext.loads(r[5])}) for r in rows]

    def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT time, kind, source, severity, details FROM events "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{"time": r[0], "kind": r[1], "source": r[2], "severity": r[3],
                 "details": pathtext.loads(r[4])} for r in rows]

    def heartbeat(self, when_iso: str, status: str,
                  live: dict[str, dict[str, Any]] | None = None) -> None:
        """The daemon is alive; ``live``: per target, what its worker is doing now
        (``backing_up_since``, ``last_progress``, ``stalled``) for ``secops status``."""
        with self.db:
            self._set("daemon_pid", str(os.getpid()))
            self._set("daemon_heartbeat", when_iso)
            self._set("daemon_status", status)
            if live is not None:
                self._set("targets_live", json.dumps(live))

    def set_targets_live(self, live: dict[str, dict[str, Any]]) -> None:
        with self.db:
            self._set("targets_live", json.dumps(live))

    def targets_live(self) -> dict[str, dict[str, Any]]:
        v = self._get("targets_live")
        found = json.loads(v) if v else {}
        return found if isinstance(found, dict) else {}

    def daemon_info(self) -> dict[str, str | None]:
        return {k: self._get(f"daemon_{k}") for k in ("pid", "heartbeat", "status")}

    def set_monitor(self, when_iso: str, status: str, error: str | None = None) -> None:
        """The integrity monitor's state: ``running``, ``stopped`` (``error``: why it died;
        None when it stopped with the daemon) or ``off``."""
        with self.db:
            self._set("monitor", json.dumps({"status": status, "since": when_iso,
                                             "error": error}))

    def monitor_info(self) -> dict[str, Any] | None:
        v = self._get("monitor")
        return dict(json.loads(v)) if v else None

    def _get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _set(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                        "value = excluded.value", (key, value))


def record_results(db: StateDB, results: Iterable[Any], *, started: float, now: float,
                   now_iso: str, retry_max: float, retry_min: float = 15.0,
                   actor: str = "daemon") -> list[str]:
    """Store backup results; failed targets get a retry time with exponential backoff.

    Returns the names of targets that failed.
    """
    failed = []
    for r in results:
        db.audit("backup.completed" if r.ok else "backup.failed", actor, {
            "target": r.target, "snapshot_id": r.snapshot_id, "files_new": r.files_new,
            "files_changed": r.files_changed, "data_added": r.data_added,
            "duration_s": round(r.duration_s, 3), "error": r.error})
        if r.ok:
            db.target_ok(r.target, started, now_iso, r.snapshot_id or "")
            if r.snapshot_id:
                db.backup_taken(r.target, r.snapshot_id, started, now)
        else:
            attempts = db.target(r.target).attempts
            delay = min(retry_max, retry_min * (2 ** min(attempts, 10)))
            db.target_failed(r.target, now, r.error or "failed", now + delay)
            failed.append(r.target)
    db.prune_pending()
    return failed
