"""Opening state.db: private from its first byte, and WAL mode set even when several
processes open a new database at the same moment (the daemon and a CLI run, or two threads
of the daemon): SQLite answers the second switch to WAL with "database is locked" at once,
without waiting its busy timeout."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

from secops import database


def _open(path: str, go: Any) -> None:
    go.wait()
    db = database.connect(path, timeout=30, wal=True)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            db.execute("INSERT INTO t VALUES (1)")
    finally:
        db.close()


def test_many_processes_open_a_new_database_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(15):
        path = str(tmp_path / f"state-{round_}.db")
        go = ctx.Event()
        procs = [ctx.Process(target=_open, args=(path, go)) for _ in range(6)]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * 6, f"round {round_}"
        db = database.connect(path)
        try:
            assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 6
        finally:
            db.close()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
