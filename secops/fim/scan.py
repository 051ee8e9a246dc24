"""``fim baseline | scan | verify``: walk the watched trees and compare with the baseline.

``scan`` trusts unchanged metadata (size, mtime, ctime, inode, mode, owner) and hashes only
what changed (and, once, a file whose similarity sketch an older version recorded);
``verify`` re-hashes everything and so also finds content changed behind restored
timestamps. Hashing and probing run on every core (hashlib releases the GIL).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from secops.fim.baseline import Baseline, Record, stat_key
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
    from secops.fim.probe import HEAD, TAIL, probe_bytes

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
        if n < len(buf) and offset == st.st_size:
            break  # the file as fstat saw it, without a read just to see the end; what
                   # is appended meanwhile changes its size and mtime: the next scan's
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


def _measure_batch(paths: list[str]) -> list[Record | OSError | None]:
    return [_measure_safe(p) for p in paths]


BATCH = 64         # paths handed to a worker at once
FORK_FROM = 256    # fewer paths than this are measured by threads (a fork costs more)


def measure_many(paths: Iterable[str], processes: bool = False
                 ) -> Iterator[tuple[str, Record | OSError | None]]:
    """Hash and probe on every core, in the order of ``paths``, while ``paths`` is still
    being produced (the walk of a tree overlaps the measuring of what it has found).

    Hashing releases the GIL, probing does not, so a single-threaded caller (the CLI) may
    fork worker processes; the daemon, which has threads of its own, uses threads. At most
    a few batches per worker are in flight: the walk waits for them, and memory holds a
    bounded number of results whatever the tree's size."""
    workers = os.cpu_count() or 2
    source = iter(paths)
    first = list(itertools.islice(source, FORK_FROM))
    if len(first) < 8 or workers < 2:  # (fewer than 8: the stream has ended)
        yield from ((p, _measure_safe(p)) for p in itertools.chain(first, source))
        return
    from concurrent.futures import Executor, Future, ThreadPoolExecutor

    pool: Executor
    if processes and len(first) >= FORK_FROM:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context("fork"))
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
    pending: collections.deque[tuple[list[str], Future[list[Record | OSError | None]]]] = \
        collections.deque()

    def ready(limit: int) -> Iterator[tuple[str, Record | OSError | None]]:
        """The finished batches, oldest first, and the oldest while more than ``limit`` are
        in flight (the walk is ahead: it waits for them)."""
        while pending and (len(pending) > limit or pending[0][1].done()):
            batch, fut = pending.popleft()
            yield from zip(batch, fut.result(), strict=True)

    rest = itertools.chain(first, source)
    with pool:
        while batch := list(itertools.islice(rest, BATCH)):
            pending.append((batch, pool.submit(_measure_batch, batch)))
            yield from ready(4 * workers)
        yield from ready(0)


def run(roots: Sequence[str], excludes: Sequence[str], baseline: Baseline, mode: str,
        processes: bool = False) -> ScanReport:
    """mode: "baseline" (record everything anew), "scan" (stat short-circuit) or "verify".

    A scan compares each file's lstat with the stored key (:meth:`Baseline.stat_keys`) and
    builds records only for what it measures and what is gone: an unchanged tree costs a
    walk and one read of the key columns, whatever its size. What the walk finds to measure
    is measured while the walk goes on, and compared with its record batch by batch: memory
    holds the changes, not the tree (a baseline streams into its table)."""
    started = time.monotonic()
    report = ScanReport(mode)
    known = {} if mode == "baseline" else baseline.stat_keys()

    def to_measure() -> Iterator[str]:
        for path, st in walk_stat(roots, excludes):
            report.files += 1
            key = known.pop(path, None)  # what is left in known at the end: not in the tree
            if mode != "scan" or key != stat_key(st):
                yield path  # (a sketch recorded by an older version is measured anew too)

    gone: set[str] = set()

    def measured() -> Iterator[Record]:
        for path, got in measure_many(to_measure(), processes):
            if isinstance(got, OSError):
                report.unreadable.append(f"{path}: {got.strerror or got}")
                continue  # unreadable is not deleted: its record stays as it is
            if got is None:  # vanished mid-scan, or a symlink now
                gone.add(path)
                continue
            report.hashed += 1
            report.hashed_bytes += got.size
            yield got

    if mode == "baseline":
        baseline.replace_all(measured())
    else:
        after: dict[str, Record] = {}   # measured, and not as recorded
        before: dict[str, Record] = {}  # their records, and those of what is gone
        stream = measured()
        while batch := list(itertools.islice(stream, 512)):
            old = baseline.get_many(r.path for r in batch)
            for rec in batch:
                was = old.get(rec.path)
                if was != rec:
                    after[rec.path] = rec
                    if was is not None:
                        before[rec.path] = was
        gone.update(known)
        before.update(baseline.get_many(gone))  # (a vanished file never recorded: none)
        report.changes = classify(before, after)
        baseline.apply(after.values(), sorted(p for p in gone if p in before))
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
