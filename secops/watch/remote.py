"""The watcher in a child process: :class:`Watcher`'s interface, watchdog's threads elsewhere.

watchdog takes each inotify event in three Python threads (its reader, its emitter and its
dispatcher), which in the daemon shared the interpreter lock with the open gate's thread at
the very moment a clerk's save needed the gate to answer its opens (docs/benchmarks.md: the
gate's cost). Here the observers run in ``python -m secops.childjob`` (job ``watch``), which
sends the changes in batches (at most every ``BATCH_S``); one reader thread of the daemon puts
them on the loop's queue. What the daemon's loop, the monitor and the tests see is unchanged:
the same :class:`Change` values on the same queue.

A child that ends while it should watch (killed, a crash) is started again at once and a
rescan is queued: what changed in between is found by the rescan, never lost. So is a child
silent for ``SILENT_S`` (it says it is alive every ``childjob.WATCH_BEAT_S``): one stopped
(SIGSTOP) or hung would otherwise leave the daemon healthy to look at and blind.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from secops.watch.observer import Change

BATCH_S = 0.02
START_TIMEOUT_S = 300.0  # watchdog adds a watch per folder: a large tree takes a while
RESTART_PAUSE_S = 1.0
SILENT_S = 20.0  # ten missed beats: stopped or hung
SLICE_S = 0.5  # the reader looks at its stop flag this often
STOP_S = 2.0


class ChildWatcher:
    def __init__(self, roots: Sequence[str], excludes: Sequence[str],
                 out: queue.SimpleQueue[Change], force_polling: bool = False,
                 log: Callable[[str, str], None] | None = None) -> None:
        self.roots = list(roots)
        self.excludes = list(excludes)
        self.out = out
        self.force_polling = force_polling
        self.log = log or (lambda _level, _message: None)
        self.modes: dict[str, str] = {}
        self.degraded: dict[str, str] = {}
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> list[str]:
        """Start the child and wait until it watches; the warnings (folders polled)."""
        warnings = self._spawn()
        self._thread = threading.Thread(target=self._read, name="secops-watch", daemon=True)
        self._thread.start()
        return warnings

    def stop(self) -> None:
        """At most about ``STOP_S`` + ``SLICE_S``: the daemon's SIGTERM must end in time. The
        child holds nothing that needs a clean end (watchdog's threads may take longer to
        let go of inotify than the daemon may wait); it is killed if it lingers."""
        self._stopping.set()
        with self._lock:
            proc, conn = self._proc, self._conn
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=2 * SLICE_S)
        if conn is not None:
            conn.close()

    # -- the child --------------------------------------------------------------------------

    def _spawn(self) -> list[str]:
        from secops import childjob

        proc, conn = childjob.spawn("watch", self.roots, self.excludes, self.force_polling,
                                    BATCH_S)
        with self._lock:
            self._proc, self._conn = proc, conn
        if not conn.poll(START_TIMEOUT_S):
            proc.kill()
            raise OSError(f"the watcher's process did not start watching within "
                          f"{START_TIMEOUT_S:.0f} s")
        try:
            message = conn.recv()
        except (EOFError, OSError) as e:
            raise OSError(f"the watcher's process ended at start (exit {proc.wait()})") from e
        if message[0] == "failed":
            proc.wait()
            raise message[1]
        _, (_, warnings, modes, degraded) = message
        self.modes, self.degraded = dict(modes), dict(degraded)
        return list(warnings)

    def _read(self) -> None:
        heard = time.monotonic()
        while not self._stopping.is_set():
            with self._lock:
                conn = self._conn
            if conn is None:
                return
            try:
                if not conn.poll(SLICE_S):
                    if self._stopping.is_set():
                        return
                    if time.monotonic() - heard > SILENT_S:
                        self._restart(f"silent for {SILENT_S:.0f} s (stopped or hung)")
                        heard = time.monotonic()
                    continue
                message: Any = conn.recv()
                heard = time.monotonic()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                self._restart("ended")
                heard = time.monotonic()
                continue
            if message[0] == "message" and message[1][0] == "changes":
                for path, kind, dest in message[1][1]:
                    self.out.put(Change(path, kind, dest))

    def _restart(self, why: str) -> None:
        """The child ended (or went silent) while it should watch: a new one, and a rescan
        covers the gap."""
        with self._lock:
            proc, conn = self._proc, self._conn
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()  # a stopped process dies of SIGKILL too
            code = proc.wait()
        if conn is not None:
            conn.close()
        self.restarts += 1
        self.log("ERROR", f"the watcher's process {why} (exit {code}); starting it again "
                 "and rescanning: nothing that changed meanwhile is missed")
        while not self._stopping.is_set():
            try:
                for w in self._spawn():
                    self.log("WARNING", w)
                if self._stopping.is_set():  # stopped while this one started: not kept
                    with self._lock:
                        late = self._proc
                    if late is not None:
                        late.kill()
                        late.wait()
                    return
                break
            except Exception as e:  # keep trying: the rescan still runs
                self.log("ERROR", f"the watcher's process cannot start: {e}")
                self._stopping.wait(RESTART_PAUSE_S)
        self.out.put(Change("", "rescan"))
