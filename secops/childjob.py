"""Work whose memory grows with the office's tree, done in a short-lived child process.

A backup builds the manifest of every watched file and compares the tree with it after
restic; a scan holds the baseline and the tree's records at once. Done in the daemon's own
threads, that memory stayed with the daemon after the work ended: measured on 100,000
files, the daemon held 116 MB when ready and 331 MB from its first backup on, for good
(the other threads' long-lived objects, allocated meanwhile, pin the allocator's arenas;
the same build alone in a process gives its memory back). In a child of its own the memory
goes back to the system when the child exits, and the daemon's size no longer follows the
archive's.

The child is ``python -m secops.childjob FD``, in a session of its own. It dies with the
daemon (``PR_SET_PDEATHSIG``; a restic it started is then left as a daemon's own restic was
before: its lock is removed by the next backup of that target). SIGINT (the daemon's
shutdown: :func:`secops.process.interrupt_all`) interrupts the child's restic, which removes
its lock, and the job ends with that error, as in the daemon. The job and its answer travel
pickled over a socket pair between the daemon and its own child: no other process's bytes
are ever unpickled, and nothing secret is on a command line. The child's progress messages
keep the daemon's stall watch fed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from secops import process
from secops.errors import OperationalError

PR_SET_PDEATHSIG = 1
PROGRESS_EVERY_S = 0.5  # the daemon's stall watch needs recency, not every line


class ChildJobFailed(OperationalError):
    """The child ended without an answer (killed, out of memory, a crash)."""


def spawn(kind: str, *args: Any) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start job ``kind`` with ``args`` in a child: the child and the daemon's end of the
    connection. :func:`run` waits for its answer; a job that streams (``watch``) is read by
    its owner."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secops.childjob", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        theirs.close()
    conn = Connection(os.dup(ours.fileno()))
    ours.close()
    try:
        conn.send((kind, args, os.getpid()))
    except OSError:
        conn.close()
        proc.kill()
        proc.wait()
        raise
    return proc, conn


def run(kind: str, *args: Any, on_progress: Callable[[], None] | None = None) -> Any:
    """Run job ``kind`` (see :data:`JOBS`) with ``args`` in a child; its result, or its
    exception raised here."""
    proc, conn = spawn(kind, *args)
    answered = False
    with process.tracked(proc):
        try:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    code = proc.wait()
                    raise ChildJobFailed(
                        f"the {kind} job's process ended without an answer (exit {code})"
                    ) from None
                if message[0] in ("progress", "message"):
                    if on_progress is not None:
                        on_progress()
                elif message[0] == "done":
                    answered = True
                    return message[1]
                else:
                    answered = True
                    raise message[1]
        finally:
            conn.close()
            if not answered:  # (an answer is the child's last act: it exits at once)
                proc.kill()
            proc.wait()  # no timed wait: under libfaketime a timed sleep fails (EINVAL)


# -- the jobs (in the child) -------------------------------------------------------------------

def _backup(progress: Callable[[], None], cfg: Any, name: str, reason: str,
            unlock_first: bool) -> Any:
    from secops.backup.engine import Engine
    from secops.clock import SystemClock

    engine = Engine.from_config(cfg, SystemClock())
    engine.restic.resolve_full_ids = False  # restic 0.14's short id is enough here
    engine.watched = True  # a change during the backup is the daemon's next backup
    return engine.backup(name, reason=reason, on_progress=lambda _t, _p: progress(),
                         unlock_first=unlock_first)


def _changed_paths(_progress: Callable[[], None], state_dir: str, roots: list[str],
                   excludes: list[str]) -> list[str]:
    from secops.manifest.cache import HashCache
    from secops.manifest.scan import changed_paths

    cache = HashCache(Path(state_dir) / "state.db")
    try:
        return changed_paths(roots, excludes, cache)
    finally:
        cache.close()


def _fim_scan(_progress: Callable[[], None], db_path: str, roots: list[str],
              excludes: list[str], mode: str) -> Any:
    from secops.fim.baseline import Baseline
    from secops.fim.scan import run as run_scan

    baseline = Baseline(Path(db_path))
    try:
        return run_scan(roots, excludes, baseline, mode)
    finally:
        baseline.close()


def _watch(progress: Reporter, roots: list[str], excludes: list[str], force_polling: bool,
           batch_s: float) -> None:
    """The watchdog observers (:class:`secops.watch.observer.Watcher`) in this process:
    ``("started", warnings, modes, degraded)`` once they watch, then ``("changes", [...])``
    at most every ``batch_s`` while changes come and ``("alive",)`` every ``WATCH_BEAT_S``
    while none do, until SIGTERM/SIGINT or the daemon is gone. Each inotify event of a
    clerk's save is taken by watchdog's threads here, not in the daemon, whose open gate
    answers that same save's opens."""
    import queue

    from secops.watch.observer import Change, Watcher

    changes: queue.SimpleQueue[Change] = queue.SimpleQueue()
    watcher = Watcher(roots, excludes, changes, force_polling)
    warnings = watcher.start()
    try:
        progress.send(("started", warnings, watcher.modes, watcher.degraded))
        beat = time.monotonic()
        while not _STOPPING.is_set():
            if time.monotonic() - beat >= WATCH_BEAT_S:  # alive, when nothing else says so
                beat = time.monotonic()
                progress.send(("alive",))
            try:
                first = changes.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            until = time.monotonic() + batch_s
            while len(batch) < BATCH_MAX and (left := until - time.monotonic()) > 0:
                try:
                    batch.append(changes.get(timeout=left))
                except queue.Empty:
                    break
            progress.send(("changes", [(c.path, c.kind, c.dest) for c in batch]))
            beat = time.monotonic()
    except OSError:
        return  # the daemon closed its end
    finally:
        watcher.stop()


def _pause(progress: Callable[[], None], seconds: float) -> int:
    """The machinery end to end, for its tests: a program run as restic is (its own session,
    interrupted by SIGINT); its exit code."""
    progress()
    done = process.run(["sleep", str(seconds)], env=process.base_env(), timeout=seconds + 30)
    return done.returncode


JOBS: dict[str, Callable[..., Any]] = {
    "backup": _backup, "changed_paths": _changed_paths, "fim_scan": _fim_scan,
    "watch": _watch, "pause": _pause}
BATCH_MAX = 2000
WATCH_BEAT_S = 2.0  # the watcher says it is alive at least this often (remote.SILENT_S)
_STOPPING = threading.Event()  # SIGTERM/SIGINT in the child: a streaming job ends


class Reporter:
    """What a job is given: call it for progress (at most every PROGRESS_EVERY_S);
    ``send`` a message to its owner (a streaming job)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.last = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.conn.send(("progress",))

    def send(self, payload: Any) -> None:
        self.conn.send(("message", payload))


def _child(fd: int) -> int:
    conn = Connection(fd)
    kind, args, daemon = conn.recv()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != daemon:  # the daemon went before the line above took effect
        return 1
    def interrupt(_signum: int, _frame: object) -> None:
        _STOPPING.set()
        # from another thread: the handler runs in the main thread, which may be holding
        # the lock of the running-children set at that very moment
        threading.Thread(target=process.interrupt_all, name="secops-interrupt").start()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        result = JOBS[kind](Reporter(conn), *args)
    except Exception as e:  # the daemon decides, as with a job in its own threads
        try:
            pickle.loads(pickle.dumps(e))  # noqa: S301 - our own object, checked it travels
        except Exception:  # an exception that does not travel: its words
            e = OperationalError(f"{type(e).__name__}: {e}")
        conn.send(("failed", e))
        return 0
    conn.send(("done", result))
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1])))
