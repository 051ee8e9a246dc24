"""The open gate and its guards: every open in a watched folder is answered within a bound.

- The **gate group** (fanotify, FAN_CLASS_CONTENT) has one mark per watched folder: every open
  there waits until the gate thread answers (the monitor judges each close-after-write before
  the writer's next open is answered, and refuses the processes it stopped).
- The **supervisor** (a thread) watches the gate thread's pulse. When an event has waited
  longer than ``BOUND_S`` (a callback stuck on a lock, on /proc, in a bug) it re-creates the
  group with the same marks and a fresh thread, answers ALLOW to what the stuck thread had
  read, and gives the old group up (the kernel then allows whatever was still queued there).
  After ``GIVE_UP_AFTER`` re-creations within ``GIVE_UP_WINDOW_S`` it stops gating: every
  open is allowed, and :meth:`Gate.answering` turns False so the daemon stops its systemd
  watchdog pings and is restarted.
- The **warden** (:mod:`secops.fim.warden`, a child process) does the same from outside when
  the daemon cannot run at all (SIGSTOP, a debugger): it answers ALLOW after ``BOUND_S``.
- The **sentry** (:class:`Sentry`, FAN_CLASS_NOTIF) has one FAN_MARK_FILESYSTEM mark per
  filesystem holding a watched folder and reports every close-after-write there without
  making anybody wait: a write in a folder the gate has no mark on yet (a new folder) gets it
  marked at once, and a write through a hard link from outside the tree is judged too.

The bound: an open in a watched folder waits at most ``BOUND_S`` (2 s) plus one check period
(0.25 s for the supervisor, 0.1 s for the warden) for a gate that does not answer.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Sequence

from secops.fim.fanotify import Event, Fanotify
from secops.fim.warden import Pulse, Warden

Log = Callable[[str, str], None]  # level, message
Degraded = Callable[[str, dict[str, object]], None]  # reason, details
BOUND_S = 2.0
SUPERVISE_S = 0.25
GIVE_UP_AFTER = 3
GIVE_UP_WINDOW_S = 300.0


class Gate:
    """The gate group, its thread, the supervisor and the warden."""

    def __init__(self, on_event: Callable[[Event], bool], log: Log, degraded: Degraded, *,
                 bound_s: float = BOUND_S, warden: bool = True,
                 ignore: Sequence[str] = ()) -> None:
        self._on_event = on_event
        self.log = log
        self.ignore = list(ignore)
        self.degraded = degraded
        self.bound_s = bound_s
        self.pulse = Pulse.create(bound_s)
        self.warden = Warden(self.pulse) if warden else None
        self.fan = Fanotify(gate=True)
        _ignore(self.fan, self.ignore, log)
        self.dirs: dict[str, float] = {}  # marked folder -> time.monotonic() it was marked
        self.read_marks: set[str] = set()  # files whose reads are reported (the decoys)
        self.rearms: list[float] = []
        self.failed = False  # gave up after repeated stalls: no gate, and not answering
        self.off = False  # the gate thread died of an exception: no gate, nobody waits
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._run_thread(self.fan)
        if self.warden is not None:
            try:
                self.warden.start()
                self.warden.hand(self.fan.fileno())
            except OSError as e:
                self.log("WARNING", f"fanotify: the gate's warden did not start ({e}); a "
                         "stopped daemon is then released by the systemd watchdog only")
                self.warden = None
        t = threading.Thread(target=self._supervise, name="secops-gate-supervisor", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            fan = self.fan
        fan.close()
        if self.warden is not None:
            self.warden.stop()
        for t in self.threads:
            t.join(timeout=2)

    # -- marks -------------------------------------------------------------------------------

    def watch_dir(self, path: str) -> None:
        """Mark folder ``path`` (raises OSError as :meth:`Fanotify.watch_dir`)."""
        with self._lock:
            if path in self.dirs or self.failed or self.off:
                return
            self.fan.watch_dir(path)
            self.dirs[path] = time.monotonic()

    def watch_reads(self, path: str) -> None:
        """Report reads of the file ``path`` (a decoy); kept across a re-arm."""
        with self._lock:
            if self.failed or self.off:
                return
            self.fan.watch_reads(path)
            self.read_marks.add(path)

    def marked_at(self, path: str) -> float | None:
        """When folder ``path`` was marked (time.monotonic()), None when it is not."""
        return self.dirs.get(path)

    # -- health ------------------------------------------------------------------------------

    def answering(self) -> bool:
        """The gate answers opens (or there is none left that could make anybody wait)."""
        if self.failed:
            return False
        with self._lock:
            fan = self.fan
        if self.off or self.pulse.age_s() <= self.bound_s:
            return True
        return not fan.pending() and not self.pulse.read()[1]

    def _stalled(self) -> bool:
        if self.failed or self.off or self.pulse.age_s() <= self.bound_s:
            return False
        with self._lock:
            fan = self.fan
        return bool(self.pulse.read()[1]) or fan.pending()

    # -- the threads -------------------------------------------------------------------------

    def _run_thread(self, fan: Fanotify) -> None:
        t = threading.Thread(target=self._gate_loop, args=(fan,), name="secops-fanotify",
                             daemon=True)
        t.start()
        self.threads.append(t)

    def _gate_loop(self, fan: Fanotify) -> None:
        try:
            fan.run(self._on_event, self._stop, pulse=self.pulse)
        except Exception as e:
            with self._lock:
                current = fan is self.fan
            if current:
                self.log("ERROR", f"fanotify gate thread stopped: {e!r}; opens are no longer "
                         "gated, inotify carries on")
                self.off = True
                if self.warden is not None:
                    self.warden.drop()  # its duplicate would keep the dead group gating
                self.degraded("gate_failed", {"error": repr(e)})
        finally:
            fan.close()  # releases any open still waiting on this group

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_S):
            if self._stalled():
                self._rearm()

    def _rearm(self) -> None:
        """Replace a gate whose thread stopped answering: new group, same marks."""
        now = time.monotonic()
        self.rearms = [t for t in self.rearms if now - t < GIVE_UP_WINDOW_S] + [now]
        stuck = self.pulse.age_s()
        if len(self.rearms) > GIVE_UP_AFTER:
            self._give_up(stuck)
            return
        try:
            new = Fanotify(gate=True)
            _ignore(new, self.ignore, self.log)
        except OSError as e:
            self.log("ERROR", f"fanotify: cannot re-create the stalled gate ({e})")
            self._give_up(stuck)
            return
        with self._lock:
            old, lost = self.fan, []
            for path in list(self.dirs):
                try:
                    new.watch_dir(path)
                except OSError as e:
                    lost.append(path)
                    if e.errno == errno.ENOSPC:
                        break
            for path in lost:
                self.dirs.pop(path, None)
            for path in list(self.read_marks):
                try:
                    new.watch_reads(path)
                except OSError:
                    self.read_marks.discard(path)  # gone meanwhile
            self.fan = new
        self.pulse.beat(False)
        self._run_thread(new)
        if self.warden is not None:
            self.warden.hand(new.fileno())
        allowed = old.allow_in_flight()
        old.abandon()
        self.log("ERROR", f"fanotify: the gate thread left an open unanswered for {stuck:.1f} s;"
                 f" re-created the gate ({len(self.dirs)} folders marked again), allowed "
                 f"{allowed} open(s) it held")
        self.degraded("stalled", {"unanswered_s": round(stuck, 1), "allowed": allowed,
                                  "rearms": len(self.rearms)})

    def _give_up(self, stuck: float) -> None:
        with self._lock:
            self.failed = True
            old = self.fan
        if self.warden is not None:
            self.warden.drop()  # its duplicate would keep the abandoned group gating
        old.allow_in_flight()
        old.abandon()
        self.log("ERROR", f"fanotify: the gate stalled {len(self.rearms)} times within "
                 f"{GIVE_UP_WINDOW_S:.0f} s; it is off (every open allowed), inotify carries "
                 "on; the daemon stops its watchdog pings so systemd restarts it")
        self.degraded("gate_given_up", {"unanswered_s": round(stuck, 1),
                                        "rearms": len(self.rearms)})


class Sentry:
    """A notification group over whole filesystems: close-after-write anywhere on them."""

    def __init__(self, on_event: Callable[[Event], bool], log: Log, degraded: Degraded,
                 ignore: Sequence[str] = ()) -> None:
        self._on_event = on_event
        self.log = log
        self.degraded = degraded
        self.fan = Fanotify(gate=False)
        _ignore(self.fan, ignore, log)
        self.devices: set[int] = set()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def watch(self, path: str) -> None:
        """The filesystem holding ``path`` (once per filesystem)."""
        dev = os.stat(path).st_dev
        if dev not in self.devices:
            self.fan.watch_filesystem(path)
            self.devices.add(dev)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="secops-sentry", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            self.fan.run(self._on_event, self._stop, poll_s=0.5)
        except Exception as e:
            if not self._stop.is_set():
                self.log("ERROR", f"fanotify sentry stopped: {e!r}; new folders are marked "
                         "when inotify reports them, writes through hard links from outside "
                         "the tree go unjudged")
                self.degraded("sentry_failed", {"error": repr(e)})
        finally:
            self.fan.close()

    def stop(self) -> None:
        self._stop.set()
        self.fan.close()
        if self.thread is not None:
            self.thread.join(timeout=2)


def _ignore(fan: Fanotify, paths: Sequence[str], log: Log) -> None:
    """Ignore marks for the daemon's own files (see :meth:`Fanotify.ignore`)."""
    for path in paths:
        try:
            fan.ignore(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            log("WARNING", f"fanotify: cannot leave {path} out: {e}")
