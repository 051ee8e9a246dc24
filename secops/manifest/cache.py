"""The hash cache: a file whose metadata has not changed is not hashed again.

SQLite (WAL) in ``state_dir/state.db``; the integrity monitor will share this table.
Paths are stored through :mod:`secops.pathtext` (a name that is not UTF-8 as ``b64:...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from secops import database
from secops.pathtext import decode, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""

Key = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


class HashCache:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = database.connect(db_path, timeout=30, wal=True)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def load(self) -> dict[str, tuple[Key, str]]:
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, sha256 FROM file_hashes")
        return {decode(r[0]): ((r[1], r[2], r[3], r[4]), r[5]) for r in rows}

    def store(self, items: Iterable[tuple[str, Key, str]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)",
                [(encode(p), k[0], k[1], k[2], k[3], h) for p, k, h in items])

    def forget(self, paths: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM file_hashes WHERE path = ?",
                                 [(encode(p),) for p in paths])

    def close(self) -> None:
        self._db.close()
