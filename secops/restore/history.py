"""Drill results kept in ``state_dir/state.db`` for the weekly report."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from secops import database

SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    time TEXT NOT NULL,
    target TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    ok INTEGER NOT NULL,
    files_checked INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    rto_s REAL NOT NULL,
    rpo_s REAL NOT NULL,
    report TEXT NOT NULL
)
"""


def record(db_path: Path, r: dict[str, Any]) -> None:
    db = database.connect(db_path, timeout=30, wal=True)
    try:
        db.execute(SCHEMA)
        with db:
            db.execute("INSERT INTO drills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (r["time"], r["target"], r["snapshot_id"], int(r["ok"]),
                        r["files_checked"], r["bytes"], r["rto_s"], r["rpo_s"], r["report"]))
    finally:
        db.close()


def recent(db_path: Path, since_iso: str) -> list[dict[str, Any]]:
    if not db_path.exists():
        return []
    db = database.connect(db_path, timeout=30)
    try:
        db.execute(SCHEMA)
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM drills WHERE time >= ? ORDER BY time", (since_iso,))
        return [dict(r) for r in rows]
    finally:
        db.close()
