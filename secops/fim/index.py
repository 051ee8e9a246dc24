"""The integrity monitor's index of the watched files, kept on disk, not in memory.

The index is the baseline itself (``fim_files`` in ``state_dir/state.db``, see
:mod:`secops.fim.baseline`), read through a bounded cache of recently used records: the
daemon's memory does not grow with the office's archive (a dict of every record cost about
900 bytes a file, 180 MB at 200,000 files). A lookup the cache misses is one SQLite point
query (tens of microseconds), made in whichever thread asks (the gate thread judging a
write, the monitor thread); each thread reads through a connection of its own.

The monitor changes the index in two steps: :meth:`remember` / :meth:`forget` as it measures
a batch of changes, then the baseline's ``apply`` of the same batch and :meth:`committed`.
Until then the batch's records are *pending*: held apart from the cache (never evicted) and
seen by every lookup, so no thread reads the older row in between. A scan that rewrote the
table is followed by :meth:`reload`, which drops what the cache held.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from secops import database
from secops.fim.baseline import Record, record_from_row
from secops.pathtext import encode

CACHE_RECORDS = 20_000  # about 18 MB at most
_GONE = None  # a pending deletion


class FileIndex:
    def __init__(self, db_path: Path, cache_records: int = CACHE_RECORDS) -> None:
        self.db_path = db_path
        self.cache_records = max(1, cache_records)
        self._cache: OrderedDict[str, Record | None] = OrderedDict()  # None: not there
        self._pending: dict[str, Record | None] = {}
        self._pending_inodes: dict[int, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0  # bumped by reload: a read begun before it is not cached
        self._indexed = False

    # -- reads (any thread) --------------------------------------------------------------

    def get(self, path: str) -> Record | None:
        with self._lock:
            if path in self._pending:
                return self._pending[path]
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
            generation = self._generation
        found = self._select("SELECT * FROM fim_files WHERE path = ?", (encode(path),))
        rec = found[0] if found else None
        with self._lock:
            if generation == self._generation and path not in self._pending:
                self._put(path, rec)
        return rec

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def path_of_inode(self, inode: int) -> str | None:
        """A path the index knows under inode ``inode`` (the file renamed, or hard-linked)."""
        with self._lock:
            path = self._pending_inodes.get(inode)
            rec = self._pending.get(path) if path is not None else None
            if rec is not None and rec.inode == inode:
                return path
            pending = dict(self._pending)  # a batch's worth: cleared at each commit
        for row in self._select("SELECT * FROM fim_files WHERE inode = ?", (inode,)):
            if row.path not in pending:  # (a pending path's row is stale, or gone)
                return row.path
        return None

    def by_inode(self, inode: int) -> Record | None:
        path = self.path_of_inode(inode)
        return self.get(path) if path is not None else None

    def __len__(self) -> int:
        rows = self._connection().execute("SELECT count(*) FROM fim_files").fetchone()
        with self._lock:
            extra = sum(1 for r in self._pending.values() if r is not None)
        return int(rows[0]) + extra  # an upper bound while a batch is pending

    # -- changes (the monitor thread) ----------------------------------------------------

    def remember(self, rec: Record) -> None:
        with self._lock:
            self._pending[rec.path] = rec
            self._pending_inodes[rec.inode] = rec.path

    def forget(self, path: str) -> Record | None:
        old = self.get(path)
        with self._lock:
            self._pending[path] = _GONE
        return old

    def committed(self) -> None:
        """The baseline holds the pending batch now: the records move to the cache."""
        with self._lock:
            for path, rec in self._pending.items():
                self._put(path, rec)
            self._pending.clear()
            self._pending_inodes.clear()

    def reload(self) -> None:
        """The table was (re)written (a scan): what the cache held may be stale. The first
        call makes the table's index by inode (the daemon looks renamed and hard-linked
        files up by inode; the CLI does not, and its scans do not maintain one)."""
        if not self._indexed:
            db = database.connect(self.db_path, timeout=30, wal=True)
            try:
                with db:
                    db.execute("CREATE INDEX IF NOT EXISTS fim_files_inode "
                               "ON fim_files(inode)")
            finally:
                db.close()
            self._indexed = True
        with self._lock:
            self._cache.clear()
            self._pending.clear()
            self._pending_inodes.clear()
            self._generation += 1

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()

    # -- inside ----------------------------------------------------------------------------

    def _put(self, path: str, rec: Record | None) -> None:
        self._cache[path] = rec
        self._cache.move_to_end(path)
        while len(self._cache) > self.cache_records:
            self._cache.popitem(last=False)

    def _select(self, sql: str, args: tuple[object, ...]) -> list[Record]:
        """Never raises into the gate or sentry thread (an exception there ends the thread,
        and with it every judgement it makes): a failed query is tried once more on a fresh
        connection, then answered as "not known"."""
        for _ in range(2):
            try:
                return [record_from_row(r) for r in self._connection().execute(sql, args)]
            except sqlite3.Error:
                db = getattr(self._local, "db", None)
                self._local.db = None
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        db.close()
        return []

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = database.connect(self.db_path, timeout=30, check_same_thread=False)
            db.execute("PRAGMA query_only=1")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db
