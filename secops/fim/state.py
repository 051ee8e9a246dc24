"""Maintenance windows and containment freezes, in ``state_dir/state.db``.

Both are shared between the daemon and the CLI (``secops maintenance``, ``secops
unfreeze``), so they live in the database, not in the daemon's memory.

One more file beside the database, ``freeze-released``: the id of the last freeze whose
release has begun. ``secops unfreeze`` writes it before it resumes a single process, and the
open gate reads it (a few µs, and only for a pid it would deny) so that a resumed program is
never refused by a freeze that is being lifted, whatever the daemon's loop is doing.

Frozen paths and the processes' descriptions (an ``exe`` is a path) are stored through
:mod:`secops.pathtext`: a name that is not UTF-8 is kept exactly, as ``b64:...``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops import database, pathtext
from secops.files import atomic_write

RELEASED = "freeze-released"

SCHEMA = """
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, ends REAL NOT NULL, reason TEXT NOT NULL, who TEXT NOT NULL,
    stopped REAL
);
CREATE TABLE IF NOT EXISTS freezes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, reason TEXT NOT NULL,
    processes TEXT NOT NULL,          -- JSON [{"pid", "start", "exe", "cmdline", "stopped"}]
    snapshots TEXT NOT NULL,          -- JSON {target: {"id", "time", "tagged"}}
    lifted REAL, lifted_how TEXT
);
CREATE TABLE IF NOT EXISTS frozen_paths (
    freeze_id INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY (freeze_id, path)
);
"""


@dataclass(frozen=True)
class Maintenance:
    id: int
    started: float
    ends: float
    reason: str
    who: str


@dataclass(frozen=True)
class Freeze:
    id: int
    started: float
    reason: str
    processes: list[dict[str, Any]]
    snapshots: dict[str, Any]
    paths: int


class FimState:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = database.connect(db_path, timeout=30, check_same_thread=False, wal=True)
        self._db.executescript(SCHEMA)
        self.released_path = db_path.parent / RELEASED

    def close(self) -> None:
        self._db.close()

    # -- maintenance windows ---------------------------------------------------------------

    def start_maintenance(self, minutes: float, reason: str, who: str) -> Maintenance:
        now = time.time()
        with self._db:
            self._db.execute("UPDATE maintenance SET stopped = ? WHERE stopped IS NULL "
                             "AND ends > ?", (now, now))
            cur = self._db.execute(
                "INSERT INTO maintenance (started, ends, reason, who) VALUES (?, ?, ?, ?)",
                (now, now + minutes * 60, reason, who))
        return Maintenance(int(cur.lastrowid or 0), now, now + minutes * 60, reason, who)

    def stop_maintenance(self) -> Maintenance | None:
        active = self.maintenance()
        if active is not None:
            with self._db:
                self._db.execute("UPDATE maintenance SET stopped = ? WHERE id = ?",
                                 (time.time(), active.id))
        return active

    def maintenance(self, now: float | None = None) -> Maintenance | None:
        now = time.time() if now is None else now
        r = self._db.execute(
            "SELECT id, started, ends, reason, who FROM maintenance WHERE stopped IS NULL "
            "AND started <= ? AND ends > ? ORDER BY id DESC LIMIT 1", (now, now)).fetchone()
        return Maintenance(*r) if r else None

    # -- freezes ---------------------------------------------------------------------------

    def record_freeze(self, reason: str, processes: list[dict[str, Any]]) -> int:
        with self._db:
            cur = self._db.execute(
                "INSERT INTO freezes (started, reason, processes, snapshots) "
                "VALUES (?, ?, ?, '{}')",
                (time.time(), reason, pathtext.dumps(processes)))
        return int(cur.lastrowid or 0)

    def add_processes(self, freeze_id: int, processes: list[dict[str, Any]]) -> None:
        """Record more processes in a freeze; one already recorded (same pid and start
        time) is not recorded twice."""
        f = self._freeze(freeze_id)
        if f is None:
            return
        known = {_identity(p) for p in f.processes}
        merged = f.processes + [p for p in processes if _identity(p) not in known]
        with self._db:
            self._db.execute("UPDATE freezes SET processes = ? WHERE id = ?",
                             (pathtext.dumps(merged), freeze_id))

    def add_frozen_paths(self, freeze_id: int, paths: list[str]) -> None:
        """Recorded *before* the attribute is set: whatever was made immutable, unfreeze
        releases (a path recorded but not frozen in the end is only cleared again)."""
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO frozen_paths VALUES (?, ?)",
                                 [(freeze_id, pathtext.encode(p)) for p in paths])

    def forget_frozen_paths(self, freeze_id: int, paths: list[str]) -> None:
        """Recorded, but not made immutable by us (immutable before, gone, or refused)."""
        if not paths:
            return
        with self._db:
            self._db.executemany("DELETE FROM frozen_paths WHERE freeze_id = ? AND path = ?",
                                 [(freeze_id, pathtext.encode(p)) for p in paths])

    def set_snapshots(self, freeze_id: int, snapshots: dict[str, Any]) -> None:
        with self._db:
            self._db.execute("UPDATE freezes SET snapshots = ? WHERE id = ?",
                             (pathtext.dumps(snapshots), freeze_id))

    def active_freeze(self) -> Freeze | None:
        r = self._db.execute("SELECT id FROM freezes WHERE lifted IS NULL ORDER BY id DESC "
                             "LIMIT 1").fetchone()
        return self._freeze(int(r[0])) if r else None

    def frozen_paths(self, freeze_id: int) -> list[str]:
        return [pathtext.decode(r[0]) for r in self._db.execute(
            "SELECT path FROM frozen_paths WHERE freeze_id = ? ORDER BY path DESC",
            (freeze_id,))]

    def mark_released(self, freeze_id: int) -> None:
        """The release of ``freeze_id`` has begun: the gate stops denying its processes."""
        atomic_write(self.released_path, f"{freeze_id}\n".encode())

    def lift(self, freeze_id: int, how: str) -> None:
        with self._db:
            self._db.execute("UPDATE freezes SET lifted = ?, lifted_how = ? WHERE id = ?",
                             (time.time(), how, freeze_id))
            self._db.execute("DELETE FROM frozen_paths WHERE freeze_id = ?", (freeze_id,))

    def _freeze(self, freeze_id: int) -> Freeze | None:
        r = self._db.execute(
            "SELECT id, started, reason, processes, snapshots, "
            "(SELECT count(*) FROM frozen_paths WHERE freeze_id = freezes.id) "
            "FROM freezes WHERE id = ?", (freeze_id,)).fetchone()
        if r is None:
            return None
        return Freeze(int(r[0]), float(r[1]), str(r[2]), pathtext.loads(r[3]),
                      pathtext.loads(r[4]), int(r[5]))


def _identity(process: dict[str, Any]) -> tuple[int, int | None]:
    return int(process["pid"]), process.get("start")


def read_released(path: Path) -> int:
    """The id in a ``freeze-released`` file; 0 when there is none (no freeze lifted yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return int(os.read(fd, 32) or b"0")
    except (OSError, ValueError):
        return 0
    finally:
        os.close(fd)
