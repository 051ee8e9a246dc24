"""watchdog observers on every watched folder; callbacks only enqueue.

inotify where it works, polling where it cannot; a queue overflow or a watch that cannot be
added asks the daemon for an immediate rescan of the affected tree. Without inotify (the
instance or watch limit reached) a folder is polled, and ``Watcher.degraded`` says which and
which kernel limit to raise: the daemon turns that into a ``watch.degraded`` alert.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from secops.manifest.scan import excluded


@dataclass(frozen=True)
class Change:
    path: str
    kind: str       # created, modified, closed, deleted, moved, dir_created, rescan, job
    dest: str = ""  # moved: where to


class _Handler:
    """A watchdog event handler that filters and enqueues (never blocks, never does I/O)."""

    def __init__(self, out: queue.SimpleQueue[Change], excludes: Sequence[str]) -> None:
        self.out = out
        self.excludes = list(excludes)

    def dispatch(self, event: Any) -> None:
        kind = str(event.event_type)
        if kind in ("opened", "closed_no_write"):
            return
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if kind == "created" and not self._excluded(src):
                self.out.put(Change(src, "dir_created"))  # new folder: fanotify marks it
            if kind != "moved":
                return
        if kind == "moved":
            dest = os.fsdecode(event.dest_path)
            src_in, dest_in = not self._excluded(src), not self._excluded(dest)
            if src_in or dest_in:  # a rename into or out of the excludes is half a move
                self.out.put(Change(src if src_in else "", "moved", dest if dest_in else ""))
            return
        if not self._excluded(src):
            self.out.put(Change(src, kind))

    def _excluded(self, path: str) -> bool:
        parts = path.split("/")
        return any(excluded(p, path, self.excludes) for p in parts if p)


class _OverflowSignal(logging.Handler):
    """watchdog reports a kernel queue overflow only in its log: turn that into a rescan."""

    def __init__(self, out: queue.SimpleQueue[Change]) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.out.put(Change("", "rescan"))


class Watcher:
    def __init__(self, roots: Sequence[str], excludes: Sequence[str],
                 out: queue.SimpleQueue[Change], force_polling: bool = False) -> None:
        self.roots = list(roots)
        self.excludes = list(excludes)
        self.out = out
        self.force_polling = force_polling
        self._observers: list[Any] = []
        self.modes: dict[str, str] = {}
        self.degraded: dict[str, str] = {}  # root -> why it is polled, what to raise
        self._signal = _OverflowSignal(out)

    def start(self) -> list[str]:
        """Start one observer per root; returns warnings (fallbacks to polling)."""
        from watchdog import events as ev
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        # Only what can change content: opens and read-only closes (restic's and the
        # hasher's own reads) never reach Python; the filter sets the inotify mask.
        wanted: list[type[ev.FileSystemEvent]] = [
            ev.FileCreatedEvent, ev.FileModifiedEvent, ev.FileDeletedEvent,
            ev.FileMovedEvent, ev.FileClosedEvent, ev.DirCreatedEvent, ev.DirDeletedEvent,
            ev.DirMovedEvent]

        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).addHandler(self._signal)
        warnings = []
        handler = _Handler(self.out, self.excludes)
        free = watch_headroom()
        for root in self.roots:
            observer: Any = None
            try:  # Observer() itself opens an inotify instance (EMFILE at the limit)
                if not self.force_polling and free is not None:
                    # watchdog adds a subfolder's watch quietly or not at all: a tree with
                    # more folders than watches left would be watched in part, silently
                    need = sum(1 for _ in os.walk(root))
                    if need > free:
                        raise OSError(errno.ENOSPC, f"{need} folders to watch, {free} inotify "
                                      "watches left")
                    free -= need
                observer = PollingObserver(timeout=2) if self.force_polling else Observer()
                observer.schedule(handler, root, recursive=True, event_filter=wanted)
                observer.start()
                self.modes[root] = "polling" if self.force_polling else "inotify"
            except OSError as e:
                if observer is not None:
                    with contextlib.suppress(Exception):  # its inotify thread, if it has one
                        observer.stop()
                observer = PollingObserver(timeout=2)
                observer.schedule(handler, root, recursive=True, event_filter=wanted)
                observer.start()
                self.modes[root] = "polling"
                self.degraded[root] = degraded_message(root, e)
                warnings.append(self.degraded[root])
                self.out.put(Change(root, "rescan"))
            self._observers.append(observer)
        return warnings

    def stop(self) -> None:
        for o in self._observers:
            o.stop()
        for o in self._observers:
            o.join(timeout=5)
        self._observers.clear()
        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).removeHandler(self._signal)


LIMITS = {errno.EMFILE: ("max_user_instances", 1024), errno.ENOSPC: ("max_user_watches", 524288)}


def _limit(name: str) -> int | None:
    try:
        with open(f"/proc/sys/fs/inotify/{name}", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def degraded_message(root: str, e: OSError) -> str:
    """Why ``root`` is polled, and the sysctl that gives inotify back."""
    text = f"{root}: inotify failed ({e.strerror or e}); polling instead (every 2 s)"
    known = LIMITS.get(e.errno or 0)
    if known is None:
        return text
    name, floor = known
    now = _limit(name)
    want = max(floor, 2 * now) if now else floor
    return (f"{text}: the kernel limit fs.inotify.{name} is reached (now {now}); raise it "
            f"with 'sysctl -w fs.inotify.{name}={want}' and in /etc/sysctl.d/, then restart "
            "secops (systemctl restart secops)")


def watch_headroom() -> int | None:
    """Inotify watches this user may still add (``max_user_watches`` less the watches of
    every inotify instance of this uid, from ``/proc/*/fdinfo``), or None when unknown."""
    limit = _limit("max_user_watches")
    if limit is None:
        return None
    uid, used = os.getuid(), 0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii",
                          errors="replace") as f:
                    used += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue  # gone, or not ours to read
    return max(0, limit - used)


def inotify_headroom(roots: Sequence[str]) -> tuple[int, int | None]:
    """(folders to watch, fs.inotify.max_user_watches or None if unknown)."""
    folders = 0
    for root in roots:
        for _dir, _subdirs, _files in os.walk(root):
            folders += 1
    return folders, _limit("max_user_watches")
