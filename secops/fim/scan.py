"""``fim baseline | scan | verify``: walk the watched trees and compare with the baseline.

``scan`` trusts unchanged metadata (size, mtime, ctime, inode, mode, owner) and hashes only
what changed (and, once, a file whose similarity sketch an older version recorded);
``verify`` re-hashes everything and so also finds content changed behind restored
timestamps. Hashing and probing run on every core (hashlib releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from secops.fim.baseline import Baseline, Record
from secops.fim.probe import fingerprint_current, probe_bytes
from secops.layout import CANARY_MARK
from secops.manifest.scan import walk_stat

CHUNK = 1 << 20


@dataclass(frozen=True)
class FimChange:
    kind: str                    # added, modified, deleted, renamed, meta
    path: str
    before: Record | None = None
    after: Record | None = None
    old_path: str | None = None  # renamed: where it was
    stealth: bool = False        # content changed although the metadata did not

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "path": self.path}
        if self.old_path is not None:
            out["old_path"] = self.old_path
        if self.before is not None:
            out["sha256_before"] = self.before.sha256
        if self.after is not None:
            out["sha256_after"] = self.after.sha256
        if self.kind == "meta" and self.before is not None and self.after is not None:
            out["mode_before"] = oct(self.before.mode & 0o7777)
            out["mode_after"] = oct(self.after.mode & 0o7777)
            out["owner_before"] = f"{self.before.uid}:{self.before.gid}"
            out["owner_after"] = f"{self.after.uid}:{self.after.gid}"
        if self.stealth:
            out["stealth"] = True
        return out


@dataclass
class ScanReport:
    mode: str
    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    seconds: float = 0.0
    changes: list[FimChange] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def fim_excludes(excludes: Sequence[str], state_dir: str) -> list[str]:
    """The configured excludes, the canaries (watched apart) and secops's own state."""
    return [*excludes, f"*{CANARY_MARK}*", os.path.join(os.path.abspath(state_dir), "*")]


def measure(path: str) -> Record | None:
    """Hash and probe one file through one descriptor; None if it is gone or not a file.

    Raises OSError (other than a vanished file) for the caller to report as unreadable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == 40:  # ELOOP: a symlink, never followed
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return measure_fd(path, fd, st)
    finally:
        os.close(fd)


def measure_fd(path: str, fd: int, st: os.stat_result) -> Record:
    from secops.fim.probe import HEAD, TAIL

    h = hashlib.sha256()
    buf = _buffer()
    view = memoryview(buf)
    head = b""
    offset = 0
    while True:
        n = os.preadv(fd, [buf], offset)
        if not n:
            break
        if offset < HEAD:
            head += view[:min(n, HEAD - offset)]
        h.update(view[:n])
        offset += n
    size = offset
    tail = os.pread(fd, TAIL, max(0, size - TAIL)) if size > HEAD else head[-TAIL:]
    p = probe_bytes(head, tail, size, lambda off, k: os.pread(fd, k, off))
    return Record(path, size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode,
                  st.st_uid, st.st_gid, h.hexdigest(), p.ftype, p.parses, p.entropy, p.fp)


_local = threading.local()


def _buffer() -> bytearray:
    """This thread's read buffer: one allocation (and its page faults) per thread, not one
    per file."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(CHUNK)
    return buf


def _measure_safe(path: str) -> Record | OSError | None:
    try:
        return measure(path)
    except OSError as e:
        return e


def measure_many(paths: Sequence[str], processes: bool = False
                 ) -> Iterable[tuple[str, Record | OSError | None]]:
    """Hash and probe on every core. Hashing releases the GIL, probing does not, so a
    single-threaded caller (the CLI) may fork worker processes; the daemon, which has
    threads of its own, uses threads."""
    workers = os.cpu_count() or 2
    if len(paths) < 8 or workers < 2:
        yield from ((p, _measure_safe(p)) for p in paths)
        return
    if processes and len(paths) >= 256:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as procs:
            yield from zip(paths, procs.map(_measure_safe, paths, chunksize=64), strict=True)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from zip(paths, pool.map(_measure_safe, paths, chunksize=16), strict=True)


def run(roots: Sequence[str], excludes: Sequence[str], baseline: Baseline, mode: str,
        processes: bool = False) -> ScanReport:
    """mode: "baseline" (record everything anew), "scan" (stat short-circuit) or "verify"."""
    started = time.monotonic()
    report = ScanReport(mode)
    old = {} if mode == "baseline" else baseline.load()
    current: dict[str, Record] = {}
    todo: list[str] = []
    for path, st in walk_stat(roots, excludes):
        report.files += 1
        hit = old.get(path)
        if mode == "scan" and hit is not None and hit.same_stat(st) and \
                fingerprint_current(hit.fp):
            current[path] = hit  # (a sketch recorded by an older version is measured anew)
        else:
            todo.append(path)
    for path, got in measure_many(todo, processes):
        if isinstance(got, OSError):
            report.unreadable.append(f"{path}: {got.strerror or got}")
            if path in old:
                current[path] = old[path]  # unreadable is not deleted
            continue
        if got is None:
            continue  # vanished mid-scan, or became a symlink
        current[path] = got
        report.hashed += 1
        report.hashed_bytes += got.size
    if mode == "baseline":
        baseline.replace_all(current.values())
    else:
        report.changes = classify(old, current)
        fresh = [r for p, r in current.items() if old.get(p) != r]
        baseline.apply(fresh, [p for p in old if p not in current])
    baseline.set_meta("last_" + mode, f"{time.time():.3f}")
    report.seconds = time.monotonic() - started
    return report


def classify(old: dict[str, Record], new: dict[str, Record]) -> list[FimChange]:
    """Added, modified, deleted, renamed (same inode, else same content) or meta changes."""
    changes: list[FimChange] = []
    for path, after in new.items():
        before = old.get(path)
        if before is None or before == after:
            continue
        if before.sha256 != after.sha256:
            stealth = (before.size, before.mtime_ns) == (after.size, after.mtime_ns)
            changes.append(FimChange("modified", path, before, after, stealth=stealth))
        elif (before.mode, before.uid, before.gid) != (after.mode, after.uid, after.gid):
            changes.append(FimChange("meta", path, before, after))
    gone = {p: r for p, r in old.items() if p not in new}
    added = {p: r for p, r in new.items() if p not in old}
    by_inode = {(r.inode, r.sha256): p for p, r in gone.items()}
    by_sha: dict[str, list[str]] = {}
    for p, r in gone.items():
        by_sha.setdefault(r.sha256, []).append(p)
    for path, after in sorted(added.items()):
        src = by_inode.pop((after.inode, after.sha256), None)
        if src is None or src not in gone:
            candidates = [p for p in by_sha.get(after.sha256, []) if p in gone]
            src = candidates[0] if len(candidates) == 1 else None
        if src is not None:
            changes.append(FimChange("renamed", path, gone.pop(src), after, old_path=src))
        else:
            changes.append(FimChange("added", path, None, after))
    changes.extend(FimChange("deleted", p, r, None) for p, r in sorted(gone.items()))
    return changes
