"""Sealing the server's own log files, and checking them against their seals.

A *seal* is what secops knew about a log file at one moment: path, device and inode, its
*identity* (SHA-256 of its first 4 KiB), its size and the SHA-256 of its content so far. Each
seal run is one ``logs.sealed`` record in the audit log (the tamper-evident copy); the latest
seal per file is kept in ``state.db`` (table ``log_seals``) for the next check.

A log may only grow. Checking a file against its seal S:

- the same inode at the path: its first S.size bytes unchanged is ``ok`` (appended to or
  untouched); otherwise, unless a rotated sibling holds the sealed content intact (logrotate's
  ``copytruncate``, or the inode number reused after a rotation: ``rotated``), it is
  ``truncated`` (shorter than S.size) or ``edited``;
- the path gone or another file there: the sealed content is looked for among the rotated
  siblings (``auth.log.1``, ``auth.log.2.gz``, ``auth.log-20260315``, ...; gzip, xz and bzip2
  are read): found intact is ``rotated`` (normal logrotate, accepted); same first bytes but
  other content is ``edited`` (in the rotated copy); nowhere is ``deleted`` (no file at the
  path) or ``rotation_anomaly`` (a new file appeared but the sealed content is gone). A new
  file at the path that still holds the sealed content (rewritten by a copy) is ``ok``;
- a symlink at a sealed path is refused (``symlink``): files are opened with O_NOFOLLOW.

A configured file that has no seal yet is ``unsealed`` (or ``missing``): not a problem.

Only the inode number decides "same file": device numbers of device-mapper volumes can change
across reboots. A file deleted and recreated can get the old inode number back; it is then
judged as the same file (``truncated`` or ``edited``), a problem either way. Rotated copies
compressed with zstd are not read. Only the sealed prefix is protected: what was appended
after the last seal can be changed unnoticed, so sealing often (``seal_every_minutes``) keeps
that window short.
Rotated copies are checked when the rotation is first seen; after that they are archived
data outside the seal (their seals stay in the audit log for a later forensic check).

:func:`run_periodic` (the daemon) verifies and then seals what it verified, so each problem
is raised once (event ``logs.tampered``) and the next period checks from there.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import sqlite3
import stat
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from secops import database
from secops.clock import Clock, SystemClock, iso_utc
from secops.config.schema import Config
from secops.errors import OperationalError

CHUNK = 1 << 20
IDENTITY_BYTES = 4096
PROBLEMS = frozenset({"edited", "truncated", "deleted", "rotation_anomaly", "symlink",
                      "not_regular", "unreadable"})
# auth.log.1, auth.log.0, auth.log-20260315, auth.log.2.gz, auth.log-2026-03-15.xz, ...
_ROTATED_SUFFIX = re.compile(r"[.-][0-9][0-9-]*(?:\.(?:gz|xz|lzma|bz2))?")
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, lzma.LZMAError, zlib.error)


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


_DECOMPRESS: dict[str, Callable[[Any], _Reader]] = {
    ".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    ".xz": lzma.LZMAFile,
    ".lzma": lzma.LZMAFile,
    ".bz2": bz2.BZ2File,
}


@dataclass(frozen=True)
class Seal:
    path: str
    dev: int
    inode: int
    identity: str       # SHA-256 of the first identity_len bytes
    identity_len: int   # min(4096, size)
    size: int
    sha256: str         # SHA-256 of the first ``size`` bytes
    mtime: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Seal:
        return cls(**{f.name: doc[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class FileStatus:
    path: str
    status: str          # ok, rotated, unsealed, missing, or one of PROBLEMS
    detail: str
    rotated_to: str | None = None

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SealReport:
    files: list[Seal] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[FileStatus] = field(default_factory=list)  # symlink, unreadable, ...
    recorded: bool = False                                   # in the audit log

    def as_json(self) -> dict[str, Any]:
        return {"files": [s.as_json() for s in self.files], "missing": self.missing,
                "refused": [r.as_json() for r in self.refused],
                "audit_recorded": self.recorded}


@dataclass
class VerifyReport:
    files: list[FileStatus] = field(default_factory=list)
    journal: dict[str, Any] | None = None
    resealed: SealReport | None = None

    @property
    def problems(self) -> list[dict[str, str]]:
        out = [{"path": f.path, "problem": f.status, "detail": f.detail}
               for f in self.files if f.problem]
        return out + journal_problems(self.journal)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.journal is None or bool(self.journal.get("ok")))

    def summary(self) -> dict[str, Any]:
        journal = None if self.journal is None else {
            k: self.journal.get(k) for k in ("ran", "ok", "passed", "failed", "unverified")}
        return {"ok": self.ok, "files": [{"path": f.path, "status": f.status}
                                         for f in self.files],
                "problems": self.problems, "journal": journal}

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": [f.as_json() for f in self.files],
                "journal": self.journal}

    def __str__(self) -> str:
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f.status] = counts.get(f.status, 0) + 1
        text = f"{len(self.files)} file(s): " + (
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
        if self.journal is not None:
            j = self.journal
            text += ("; journal: " + (f"{j.get('passed', 0)} passed, "
                     f"{len(j.get('failed', []))} failed" if j.get("ran") else "not checked"))
        return text


def journal_problems(journal: dict[str, Any] | None) -> list[dict[str, str]]:
    if not journal:
        return []
    reasons = journal.get("reasons", {})
    return [{"path": f, "problem": "journal_failed", "detail": reasons.get(f, "")}
            for f in journal.get("failed", [])]


# -- reading -------------------------------------------------------------------------------

class _Refused(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_CANDIDATE_ERRORS: tuple[type[Exception], ...] = (_Refused, *_READ_ERRORS)


def _open(path: str) -> tuple[io.BufferedReader, os.stat_result]:
    """Open a regular file without following a symlink at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise _Refused("symlink", f"replaced by a symlink (to {target})") from None
        raise _Refused("unreadable", f"cannot open: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _Refused("not_regular", "not a regular file")
    return os.fdopen(fd, "rb"), st


@contextmanager
def _open_rotated(path: str) -> Iterator[_Reader]:
    f, _ = _open(path)
    with f:
        opener = _DECOMPRESS.get(os.path.splitext(path)[1])
        if opener is None:
            yield f
            return
        g = opener(f)
        try:
            yield g
        finally:
            g.close()


class _Stream:
    """SHA-256 of a file read in 1 MiB chunks, keeping its first 4 KiB for the identity."""

    def __init__(self, f: _Reader) -> None:
        self._f = f
        self._sha = hashlib.sha256()
        self._head = bytearray()
        self.pos = 0

    def advance(self, n: int | None) -> None:
        """Read and hash up to ``n`` more bytes (None: to the end)."""
        end = None if n is None else self.pos + max(n, 0)
        while end is None or self.pos < end:
            chunk = self._f.read(CHUNK if end is None else min(CHUNK, end - self.pos))
            if not chunk:
                return
            self._sha.update(chunk)
            if len(self._head) < IDENTITY_BYTES:
                self._head += chunk[:IDENTITY_BYTES - len(self._head)]
            self.pos += len(chunk)

    def digest(self) -> str:
        return self._sha.hexdigest()

    def identity(self, n: int) -> str | None:
        return hashlib.sha256(self._head[:n]).hexdigest() if len(self._head) >= n else None

    def seal(self, path: str, st: os.stat_result) -> Seal:
        n = min(IDENTITY_BYTES, self.pos)
        return Seal(path=path, dev=st.st_dev, inode=st.st_ino, identity=self.identity(n) or "",
                    identity_len=n, size=self.pos, sha256=self.digest(),
                    mtime=iso_utc(datetime.fromtimestamp(st.st_mtime, UTC)))


def seal_file(path: str) -> Seal:
    """The seal of ``path`` now (its first st_size bytes: later appends are not included)."""
    f, st = _open(path)
    with f:
        s = _Stream(f)
        try:
            s.advance(st.st_size)
        except OSError as e:
            raise _Refused("unreadable", f"read error: {e.strerror}") from None
        return s.seal(path, st)


def rotated_siblings(path: str) -> list[str]:
    """Regular files beside ``path`` named like its rotations, newest first."""
    folder, name = os.path.split(path)
    found: list[tuple[float, str]] = []
    try:
        entries = list(os.scandir(folder or "."))
    except OSError:
        return []
    for e in entries:
        rest = e.name[len(name):]
        if not (e.name.startswith(name) and _ROTATED_SUFFIX.fullmatch(rest)):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime, e.path))
    return [p for _, p in sorted(found, reverse=True)]


def _compare(seal: Seal, f: _Reader) -> str:
    """match, edited (same first bytes, other content), short (content cut off), other."""
    s = _Stream(f)
    s.advance(seal.identity_len)
    if s.identity(seal.identity_len) != seal.identity:
        return "other"
    try:
        s.advance(seal.size - s.pos)
    except _READ_ERRORS:
        return "short"        # a damaged compressed copy
    if s.pos < seal.size:
        return "short"
    return "match" if s.digest() == seal.sha256 else "edited"


@dataclass(frozen=True)
class _Found:
    kind: str      # match, edited, short
    where: str


def _search(seal: Seal, candidates: list[str]) -> tuple[_Found | None, list[str]]:
    """The first candidate holding the sealed content intact, else the first one holding a
    changed copy of it; and the candidates that could not be read."""
    best: _Found | None = None
    unreadable: list[str] = []
    for c in candidates:
        try:
            with _open_rotated(c) as f:
                kind = _compare(seal, f)
        except FileNotFoundError:
            continue
        except _CANDIDATE_ERRORS:
            unreadable.append(c)
            continue
        if kind == "match":
            return _Found(kind, c), unreadable
        if kind != "other" and best is None:
            best = _Found(kind, c)
    return best, unreadable


# -- judging -------------------------------------------------------------------------------

def _judge_elsewhere(seal: Seal, found: _Found | None, unreadable: list[str], *,
                     here: bool, same_inode: bool, cut: bool) -> FileStatus:
    """The status of a sealed file whose sealed content is not (intact) at its path."""
    p = seal.path
    note = f" (could not read {', '.join(unreadable)})" if unreadable else ""
    if found is None:
        if same_inode:
            return (FileStatus(p, "truncated", f"shorter than the {seal.size} sealed bytes")
                    if cut else
                    FileStatus(p, "edited", f"the first {seal.size} bytes (sealed) changed"))
        if not here:
            return FileStatus(p, "deleted", f"the file is gone and its sealed content "
                              f"({seal.size} bytes) is in no rotated copy{note}")
        return FileStatus(p, "rotation_anomaly", f"a different file (new inode) is at the path "
                          f"and the sealed content ({seal.size} bytes) is in no rotated copy: "
                          f"rewritten with changes (e.g. sed -i) or replaced{note}")
    if found.where == p:
        return {"match": FileStatus(p, "ok", "rewritten as a new file, the sealed content "
                                    "intact"),
                "edited": FileStatus(p, "edited", "rewritten as a new file with the sealed "
                                     "content changed"),
                "short": FileStatus(p, "truncated", "rewritten as a new file without part of "
                                    "the sealed content")}[found.kind]
    w = found.where
    how = "copied (copytruncate) or rotated" if same_inode else "rotated"
    return {"match": FileStatus(p, "rotated", f"{how}: the sealed content is intact in {w}",
                                w),
            "edited": FileStatus(p, "edited", f"the sealed content was changed in the "
                                 f"rotated copy {w}", w),
            "short": FileStatus(p, "truncated", f"the rotated copy {w} lacks part of the "
                                f"sealed content", w)}[found.kind]


def _same_file(seal: Seal, f: _Reader, st: os.stat_result, reseal: bool
               ) -> tuple[FileStatus, Seal | None]:
    s = _Stream(f)
    s.advance(seal.size)
    if s.pos >= seal.size and s.digest() == seal.sha256:
        grown = st.st_size - seal.size
        status = FileStatus(seal.path, "ok", f"grew by {grown} bytes" if grown > 0
                            else "unchanged")
    else:
        found, unreadable = _search(seal, rotated_siblings(seal.path))
        status = _judge_elsewhere(seal, found, unreadable, here=True, same_inode=True,
                                  cut=s.pos < seal.size)
    if not reseal:
        return status, None
    s.advance(None)
    return status, s.seal(seal.path, st)


def _unsealed(path: str) -> FileStatus:
    try:
        f, _ = _open(path)
    except FileNotFoundError:
        return FileStatus(path, "missing", "no such file (nothing sealed)")
    except _Refused as r:
        return FileStatus(path, "unsealed", f"not sealed: {r.detail}")
    f.close()
    return FileStatus(path, "unsealed", "not sealed yet")


def check_file(path: str, seal: Seal | None, reseal: bool = False
               ) -> tuple[FileStatus, Seal | None]:
    """The status of ``path`` against its seal; with ``reseal``, its new seal when it could
    be taken in the same pass (the same file)."""
    if seal is None:
        return _unsealed(path), None
    try:
        f, st = _open(path)
    except FileNotFoundError:
        found, unreadable = _search(seal, rotated_siblings(path))
        return _judge_elsewhere(seal, found, unreadable, here=False, same_inode=False,
                                cut=False), None
    except _Refused as r:
        return FileStatus(path, r.status, r.detail), None
    try:
        with f:
            if st.st_ino == seal.inode:
                return _same_file(seal, f, st, reseal)
    except OSError as e:
        return FileStatus(path, "unreadable", f"read error: {e.strerror}"), None
    found, unreadable = _search(seal, [*rotated_siblings(path), path])
    return _judge_elsewhere(seal, found, unreadable, here=True, same_inode=False,
                            cut=False), None


# -- state.db ------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_seals (
    path TEXT PRIMARY KEY, seal TEXT NOT NULL, sealed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_journal_failures (
    file TEXT PRIMARY KEY, reason TEXT NOT NULL, first_seen TEXT NOT NULL);
"""


@contextmanager
def _db(state_dir: str) -> Iterator[sqlite3.Connection]:
    path = Path(state_dir) / "state.db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = database.connect(path, timeout=30, wal=True)
    except (OSError, sqlite3.Error) as e:
        raise OperationalError(f"{path}: cannot open the state database: {e}") from None
    try:
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        yield db
    except sqlite3.Error as e:
        raise OperationalError(f"{path}: {e}") from None
    finally:
        db.close()


def load_seals(state_dir: str) -> dict[str, Seal]:
    with _db(state_dir) as db:
        rows = db.execute("SELECT path, seal FROM log_seals").fetchall()
    return {str(r[0]): Seal.from_json(json.loads(r[1])) for r in rows}


def save_seals(state_dir: str, seals: list[Seal], sealed_at: str) -> None:
    """The latest seal run replaces the previous one (files no longer sealed drop out)."""
    with _db(state_dir) as db, db:
        db.execute("DELETE FROM log_seals")
        db.executemany("INSERT INTO log_seals VALUES (?, ?, ?)",
                       [(s.path, json.dumps(s.as_json()), sealed_at) for s in seals])


def _new_journal_failures(state_dir: str, journal: dict[str, Any] | None, now: str
                          ) -> list[dict[str, str]]:
    """Journal failures not seen by the previous periodic run (each is raised once)."""
    if not journal or not journal.get("ran"):
        return []
    current = journal_problems(journal)
    with _db(state_dir) as db, db:
        known = {str(r[0]) for r in db.execute("SELECT file FROM log_journal_failures")}
        db.execute("DELETE FROM log_journal_failures")
        db.executemany("INSERT INTO log_journal_failures VALUES (?, ?, ?)",
                       [(p["path"], p["detail"], now) for p in current])
    return [p for p in current if p["path"] not in known]


# -- the operations ------------------------------------------------------------------------

def seal_paths(cfg: Config) -> list[str]:
    """``[logs] seal``, relative entries resolved against the config file's folder."""
    base = Path(cfg.source).parent.absolute() if cfg.source else Path.cwd()
    out: list[str] = []
    for p in cfg.logs.seal:
        full = os.path.normpath(os.path.join(base, p))
        if full not in out:
            out.append(full)
    return out


def _seal_all(paths: list[str], ready: dict[str, Seal]) -> SealReport:
    report = SealReport()
    for p in paths:
        if p in ready:
            report.files.append(ready[p])
            continue
        try:
            report.files.append(seal_file(p))
        except FileNotFoundError:
            report.missing.append(p)
        except _Refused as r:
            report.refused.append(FileStatus(p, r.status, r.detail))
    return report


def _commit(cfg: Config, report: SealReport, now: str, actor: str | None,
            verified: dict[str, Any] | None = None) -> None:
    from secops.audit import record

    save_seals(cfg.paths.state_dir, report.files, now)
    data = report.as_json()
    del data["audit_recorded"]
    data["time"] = now
    if verified is not None:
        data["verified"] = verified
    report.recorded = record(cfg.paths.state_dir, cfg.office.code, "logs.sealed", data, actor)


def seal(cfg: Config, *, actor: str | None = None, clock: Clock | None = None) -> SealReport:
    """Seal every ``[logs] seal`` file now: state.db and one ``logs.sealed`` audit record."""
    paths = seal_paths(cfg)
    if not paths:
        return SealReport()
    report = _seal_all(paths, {})
    _commit(cfg, report, iso_utc((clock or SystemClock()).now()), actor)
    return report


def verify(cfg: Config, reseal: bool = False, *, journal: bool = True,
           actor: str | None = None, clock: Clock | None = None) -> VerifyReport:
    """Check every sealed file (and the journal); with ``reseal``, then seal what was seen."""
    from secops.logs.journal import journal_check

    paths = seal_paths(cfg)
    seals = load_seals(cfg.paths.state_dir) if paths else {}
    report = VerifyReport()
    fresh: dict[str, Seal] = {}
    for p in paths:
        status, new = check_file(p, seals.get(p), reseal)
        report.files.append(status)
        if new is not None:
            fresh[p] = new
    if journal:
        report.journal = journal_check(cfg)
    if reseal and paths:
        report.resealed = _seal_all(paths, fresh)
        _commit(cfg, report.resealed, iso_utc((clock or SystemClock()).now()), actor,
                verified=report.summary())
    return report


def raise_tampered(cfg: Config, problems: list[dict[str, str]], source: str,
                   clock: Clock | None = None) -> None:
    """The ``logs.tampered`` event (severity high) for the playbook engine and status."""
    from secops.daemon.state import StateDB

    db = StateDB(Path(cfg.paths.state_dir) / "state.db")
    try:
        db.add_event(iso_utc((clock or SystemClock()).now()), "logs.tampered", source, "high",
                     {"paths": sorted({p["path"] for p in problems}), "problems": problems})
    finally:
        db.close()


def record_outcome(cfg: Config, report: VerifyReport, *, source: str = "cli",
                   actor: str | None = None, clock: Clock | None = None) -> bool:
    """A ``logs.verified`` audit record, and ``logs.tampered`` on problems. True if the
    audit record was written (False before ``secops init``)."""
    from secops.audit import record

    problems = report.problems
    if problems:
        raise_tampered(cfg, problems, source, clock)
    return record(cfg.paths.state_dir, cfg.office.code, "logs.verified", report.summary(),
                  actor)


def run_periodic(cfg: Config, clock: Clock | None = None) -> VerifyReport:
    """The daemon's job every ``seal_every_minutes``: verify, raise ``logs.tampered`` on new
    problems, then seal the current state (the first run only seals). The ``logs.sealed``
    record carries the verification's summary."""
    clock = clock or SystemClock()
    report = verify(cfg, reseal=True, actor="daemon:logs", clock=clock)
    problems = [{"path": f.path, "problem": f.status, "detail": f.detail}
                for f in report.files if f.problem]
    problems += _new_journal_failures(cfg.paths.state_dir, report.journal,
                                      iso_utc(clock.now()))
    if problems:
        raise_tampered(cfg, problems, "daemon", clock)
    return report
