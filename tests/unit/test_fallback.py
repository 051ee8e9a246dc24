"""Where the daemon's alerts go while state.db or its disk fails (issue 15, item 3)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from secops.daemon.fallback import Fallback, classify, path_for, read


def test_what_is_a_failure_of_the_state() -> None:
    assert classify(OSError(errno.ENOSPC, "No space left on device")) == "state.disk_full"
    assert classify(sqlite3.OperationalError("database or disk is full")) == "state.disk_full"
    assert classify(sqlite3.DatabaseError("database disk image is malformed")) == \
        "state.corrupt"
    assert classify(sqlite3.DatabaseError("file is not a database")) == "state.corrupt"
    # the twins: a busy database and other errors are not the state's failure
    assert classify(sqlite3.OperationalError("database is locked")) is None
    assert classify(OSError(errno.ECONNREFUSED, "refused")) is None
    assert classify(ValueError("x")) is None


def test_alerts_kept_outside_read_back_exactly_and_per_office(tmp_path: Path) -> None:
    run = tmp_path / "run"
    a, b = tmp_path / "a" / "state", tmp_path / "b" / "state"
    assert path_for(a, run) != path_for(b, run)
    assert read(a, run) is None
    fb = Fallback(a, run)
    name = "/srv/bau-cu/danh-s\udcc3ch.csv"  # a name that is not UTF-8
    assert fb.add("2026-05-22T02:15:40Z", "state.disk_full", "critical",
                  {"error": "database or disk is full", "paths": [name]})
    fb.beat("2026-05-22T02:15:50Z")
    doc = read(a, run)
    assert doc is not None and doc["heartbeat"] == "2026-05-22T02:15:50Z"
    assert doc["alerts"][0]["details"]["paths"] == [name]
    assert read(b, run) is None  # another office's status sees nothing
    assert Fallback(a, run).kinds() == {"state.disk_full"}  # a restart keeps them
    assert oct(path_for(a, run).stat().st_mode & 0o777) == "0o600"
    fb.clear()
    assert read(a, run) is None
