"""The one way secops opens an SQLite database: the file is private (0600) before SQLite
writes a byte, and stays so.

``state.db`` holds shadow copies of voter lists, the hash cache and the incidents: it must
never be readable by others, whatever the umask. SQLite creates its -wal and -shm files with
the mode of the database file, so making the database file 0600 is enough for new files;
an existing database, -wal or -shm readable by others is narrowed to 0600.

Never open (and close) a descriptor of a database file that may be open in this process:
closing any descriptor of a file drops every POSIX lock the process holds on it, the locks
of SQLite's other connections included, and concurrent writers then corrupt the database.
So a new file is made 0600 under a temporary name, its descriptor closed, and only then
linked into place; an existing one is changed by name (``chmod``), never through a
descriptor.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path`` (empty, 0600) if it does not exist; narrow an existing file and its
    -wal, -shm to 0600. Never fatal: what we may not change is SQLite's to refuse."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        _create(path)
    except OSError:
        return
    for p in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
        _narrow(p)


def _create(path: Path) -> None:
    try:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    except OSError:
        return  # a folder we cannot write: sqlite3.connect says so
    os.close(fd)  # closed before the file has its real name: no SQLite lock to lose
    try:
        os.link(tmp, path)  # atomic; another process or thread may have made it first
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _narrow(path: Path) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IMODE(st.st_mode) & MODE)


def connect(path: Path | str, *, timeout: float = 30.0, check_same_thread: bool = True,
            wal: bool = False) -> sqlite3.Connection:
    """``sqlite3.connect`` on a private file; ``wal``: in WAL mode (``journal_mode``)."""
    make_private(Path(path))
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=check_same_thread)
    if wal:
        try:
            _set_wal(db, timeout)
        except BaseException:
            db.close()
            raise
    return db


def _set_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switching to WAL needs the database to itself for a moment, and SQLite reports a
    second connection doing the same (two processes opening a new state.db at once) as
    "database is locked" at once, without its busy timeout: retried up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
