"""The integrity baseline: one row per watched file in ``state_dir/state.db`` (WAL).

Besides what AIDE records (path, size, times, inode, mode, owner, SHA-256) each row keeps
what the ransomware detectors compare against: the type from magic bytes, whether the
container parsed, the entropy of a sample and a similarity sketch. Small protected text
files also keep a compressed shadow copy, so an unauthorised change can be shown as a diff.
Paths are stored through :mod:`secops.pathtext` (a name that is not UTF-8 as ``b64:...``).
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops import database
from secops.fim.probe import FP_CHUNKS, FP_LINES
from secops.pathtext import decode, encode

SCHEMA = """
CREATE TABLE IF NOT EXISTS fim_files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    sha256 TEXT NOT NULL, ftype TEXT NOT NULL, parses INTEGER NOT NULL, entropy REAL NOT NULL,
    fp BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS fim_shadow (path TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fim_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# the sketch kinds of this version (``probe.fingerprint_current``), as SQL blob literals
_CURRENT_FP = f"(x'{FP_CHUNKS:02X}', x'{FP_LINES:02X}')"
_KEYS_SQL = (  # (constants of this module, no input)
    "SELECT path, size, mtime_ns, ctime_ns, inode, mode, uid, gid, "  # noqa: S608
    f"(length(fp) = 0 OR (length(fp) % 4 = 1 AND substr(fp, 1, 1) IN {_CURRENT_FP})) "
    "FROM fim_files")


@dataclass(frozen=True)
class Record:
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    mode: int
    uid: int
    gid: int
    sha256: str
    ftype: str
    parses: bool
    entropy: float
    fp: bytes

    def same_stat(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode, self.mode, self.uid,
                self.gid) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                              st.st_mode, st.st_uid, st.st_gid)

    def row(self) -> tuple[object, ...]:
        return (encode(self.path), self.size, self.mtime_ns, self.ctime_ns, self.inode, self.mode,
                self.uid, self.gid, self.sha256, self.ftype, int(self.parses), self.entropy,
                self.fp)


class Baseline:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = database.connect(db_path, timeout=30, check_same_thread=False, wal=True)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def load(self) -> dict[str, Record]:
        rows = self._db.execute("SELECT * FROM fim_files")
        return {rec.path: rec for rec in map(record_from_row, rows)}

    def records(self) -> Iterator[Record]:
        """Every record, streamed (a tree's worth is never held at once)."""
        for row in self._db.execute("SELECT * FROM fim_files"):
            yield record_from_row(row)

    def stat_keys(self) -> dict[str, tuple[int, ...]]:
        """Every path with what a scan compares without reading the file: (size, mtime_ns,
        ctime_ns, inode, mode, uid, gid, 1 if its sketch is of this version else 0), the
        order of :func:`stat_key`. No ``Record`` is built: a scan of an unchanged tree reads
        only these columns."""
        rows = self._db.execute(_KEYS_SQL)
        return {decode(r[0]): r[1:] for r in rows}

    def get_many(self, paths: Iterable[str]) -> dict[str, Record]:
        """The records of ``paths`` that the baseline holds."""
        wanted = [encode(p) for p in paths]
        out: dict[str, Record] = {}
        for at in range(0, len(wanted), 500):
            part = wanted[at:at + 500]
            marks = ",".join("?" * len(part))  # only placeholders: the paths are bound
            rows = self._db.execute(f"SELECT * FROM fim_files WHERE path IN ({marks})",  # noqa: S608
                                    part)
            out.update((rec.path, rec) for rec in map(record_from_row, rows))
        return out

    def get(self, path: str) -> Record | None:
        r = self._db.execute("SELECT * FROM fim_files WHERE path = ?",
                             (encode(path),)).fetchone()
        return None if r is None else record_from_row(r)

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM fim_files").fetchone()[0])

    def replace_all(self, records: Iterable[Record]) -> None:
        """The baseline becomes ``records`` (streamed), in one transaction at the end.

        The records go in batches to a TEMP table of this connection first (private to
        it, gone with it, outside state.db's write lock): a tree's worth is never held in
        memory, and the daemon's writes to the baseline wait only for the final swap."""
        self._db.execute("DROP TABLE IF EXISTS temp.fim_files_next")
        self._db.execute("CREATE TEMP TABLE fim_files_next AS SELECT * FROM main.fim_files "
                         "WHERE 0")
        try:
            rows = (r.row() for r in records)
            while batch := list(itertools.islice(rows, 1024)):
                with self._db:
                    self._db.executemany("INSERT INTO temp.fim_files_next "
                                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            with self._db:
                self._db.execute("DELETE FROM main.fim_files")
                self._db.execute("INSERT OR REPLACE INTO main.fim_files "
                                 "SELECT * FROM temp.fim_files_next")
        finally:
            self._db.execute("DROP TABLE IF EXISTS temp.fim_files_next")

    def apply(self, upsert: Iterable[Record], delete: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM fim_files WHERE path = ?",
                                 [(encode(p),) for p in delete])
            self._db.executemany(
                "INSERT OR REPLACE INTO fim_files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [r.row() for r in upsert])

    # -- shadow copies of small protected text files, for diffs ----------------------------

    def shadow(self, path: str) -> bytes | None:
        r = self._db.execute("SELECT content FROM fim_shadow WHERE path = ?",
                             (encode(path),)).fetchone()
        return zlib.decompress(r[0]) if r else None

    def set_shadow(self, path: str, content: bytes | None) -> None:
        with self._db:
            if content is None:
                self._db.execute("DELETE FROM fim_shadow WHERE path = ?", (encode(path),))
            else:
                self._db.execute("INSERT OR REPLACE INTO fim_shadow VALUES (?, ?)",
                                 (encode(path), zlib.compress(content, 6)))

    def meta(self, key: str) -> str | None:
        r = self._db.execute("SELECT value FROM fim_meta WHERE key = ?", (key,)).fetchone()
        return str(r[0]) if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO fim_meta VALUES (?, ?)", (key, value))


def stat_key(st: os.stat_result) -> tuple[int, ...]:
    """A file's lstat in the order of :meth:`Baseline.stat_keys`, its sketch taken as
    current: equal to the stored key exactly when a scan may trust the record."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode, st.st_uid,
            st.st_gid, 1)


def record_from_row(r: tuple[Any, ...]) -> Record:
    return Record(decode(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                  bool(r[10]), r[11], bytes(r[12]))
