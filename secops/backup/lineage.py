"""Snapshot ids across ``restic tag``: it rewrites a snapshot under a new id (same tree, same
time) and deletes the old one, so an id recorded before a tag (a freeze's pin, a drill, an
incident) would name nothing. Every rewrite secops makes is recorded here (``state.db``,
table ``snapshot_ids``), and whatever names a snapshot to a person resolves it with
``current`` first.

A tagging is recorded twice: its intent (the old id, tree, time and paths) before restic
runs, and the new id after. A process killed in between (the daemon stopped mid-playbook)
leaves the intent; ``settle`` finds what the snapshot became from the next listing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from secops.backup.models import Snapshot
from secops.database import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_ids (
    target TEXT NOT NULL, old_id TEXT NOT NULL, new_id TEXT NOT NULL, time REAL NOT NULL,
    PRIMARY KEY (target, old_id)
);
CREATE TABLE IF NOT EXISTS snapshot_taggings (
    target TEXT NOT NULL, old_id TEXT NOT NULL, tree TEXT NOT NULL, time TEXT NOT NULL,
    paths TEXT NOT NULL, PRIMARY KEY (target, old_id)
);
"""
_MAX_HOPS = 1000


def successor(before: Snapshot, after: Sequence[Snapshot]) -> Snapshot | None:
    """The snapshot ``before`` became: the one with its tree and time (pure)."""
    same = [s for s in after if s.tree and s.tree == before.tree and s.time == before.time
            and s.paths == before.paths]
    if not same:
        return None
    fresh = [s for s in same if s.id != before.id]
    return (fresh or same)[-1]


def intend(db_path: Path, before: Snapshot) -> None:
    """Before ``restic tag`` rewrites ``before``: what to recognise it by afterwards."""
    db = connect(db_path)
    try:
        with db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR REPLACE INTO snapshot_taggings VALUES (?, ?, ?, ?, ?)",
                       (before.target, before.id, before.tree, before.time.isoformat(),
                        json.dumps(list(before.paths))))
    finally:
        db.close()


def record(db_path: Path, target: str, old_id: str, new_id: str) -> None:
    """``old_id`` became ``new_id``; the tagging's intent is done with."""
    db = connect(db_path)
    try:
        with db:
            db.executescript(SCHEMA)
            if old_id != new_id:
                db.execute("INSERT OR REPLACE INTO snapshot_ids VALUES (?, ?, ?, ?)",
                           (target, old_id, new_id, time.time()))
            db.execute("DELETE FROM snapshot_taggings WHERE target = ? AND old_id = ?",
                       (target, old_id))
    finally:
        db.close()


def unsettled(db_path: Path, target: str) -> bool:
    """A tagging of ``target`` whose outcome was never recorded (killed in between)."""
    if not db_path.exists():
        return False
    db = connect(db_path)
    try:
        db.executescript(SCHEMA)
        return db.execute("SELECT 1 FROM snapshot_taggings WHERE target = ? LIMIT 1",
                          (target,)).fetchone() is not None
    finally:
        db.close()


def settle(db_path: Path, target: str, snaps: Sequence[Snapshot]) -> int:
    """Finish the taggings of ``target`` a killed process left, from a fresh listing
    ``snaps``: an old id still listed was never rewritten; otherwise the snapshot with its
    tree, time and paths is what it became. How many were settled."""
    db = connect(db_path)
    try:
        db.executescript(SCHEMA)
        rows = db.execute("SELECT old_id, tree, time, paths FROM snapshot_taggings "
                          "WHERE target = ?", (target,)).fetchall()
    finally:
        db.close()
    by_id = {s.id: s for s in snaps}
    done = 0
    for old_id, tree, when, paths in rows:
        if old_id in by_id:
            record(db_path, target, old_id, old_id)
            done += 1
            continue
        ghost = Snapshot(old_id, old_id[:8], datetime.fromisoformat(when), target,
                         tuple(json.loads(paths)), (), "", tree)
        after = successor(ghost, snaps)
        if after is not None:
            record(db_path, target, old_id, after.id)
            done += 1
    return done


def current(db_path: Path, target: str, snapshot_id: str) -> str:
    """The id ``snapshot_id`` (full or a prefix of at least 8 hex) has now, after every
    rewrite secops recorded; the id itself when it was never rewritten."""
    if not snapshot_id or not db_path.exists():
        return snapshot_id
    db = connect(db_path)
    try:
        db.executescript(SCHEMA)
        seen = snapshot_id
        for _ in range(_MAX_HOPS):
            row = db.execute(
                "SELECT new_id FROM snapshot_ids WHERE target = ? AND "
                "(old_id = ? OR (length(?) >= 8 AND substr(old_id, 1, length(?)) = ?)) "
                "ORDER BY time DESC LIMIT 1", (target, seen, seen, seen, seen)).fetchone()
            if row is None:
                return seen
            seen = str(row[0])
        return seen
    finally:
        db.close()
