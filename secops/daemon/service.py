"""``secops run``: the daemon.

One loop owns the state: it drains watcher events into the state database, asks the
debouncer when to back up, hands each target's backups to that target's own worker thread (a
hung target never holds up another) and other slow work (rescans, checks, drills) to a
general worker, records results, retries failing targets with backoff, raises an alert when a
change stays out of a target too long, runs the schedules, pings systemd.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from secops import childjob, process
from secops.backup.engine import Engine
from secops.clock import Clock, SystemClock, iso_epoch, iso_utc
from secops.config.schema import Config
from secops.daemon import notify
from secops.daemon.fallback import STATE_FAILURES, Fallback, classify
from secops.daemon.jobs import Done, Job, Worker
from secops.daemon.metrics import write_metrics
from secops.daemon.plan import build_schedule
from secops.daemon.state import StateDB, TargetState, record_results
from secops.errors import ConfigError, OperationalError, SecopsError
from secops.layout import StateDir
from secops.pathtext import dumps as pathtext_dumps
from secops.watch.debounce import Debouncer
from secops.watch.observer import Change, inotify_headroom
from secops.watch.remote import ChildWatcher

if TYPE_CHECKING:
    from secops.fim.monitor import Monitor
    from secops.fim.state import FimState
    from secops.intrusion.rules import Finding
    from secops.intrusion.watch import LoginWatchThread
    from secops.playbooks.dispatch import Dispatcher

Log = Callable[[str, str], None]  # level, message
POLL_S = 0.2  # the loop's longest sleep; this process's own events wake it at once
# A burst of changes (a program's save: lock file, temp file, rename, attributes) is taken
# in one go once it has been quiet this long, or after the longest wait: recording each
# change as it came made the daemon write state.db in the middle of the program's own writes
# and fsync (bench/office_bench.py: a LibreOffice save 1.22x unwatched, 1.15x gathered).
# Nothing waits on it: a backup is due a debounce (seconds) after the change at the earliest,
# and a change not yet recorded at a crash is found by the start-up rescan.
GATHER_QUIET_S = 0.05
GATHER_MAX_S = 0.25


class Service:
    def __init__(self, load: Callable[[], Config], log: Log, clock: Clock | None = None,
                 force_polling: bool = False) -> None:
        self.load = load
        self.log = log
        self.clock = clock or SystemClock()
        self.force_polling = force_polling
        self.cfg = load()
        self.events: queue.SimpleQueue[Change] = queue.SimpleQueue()
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.worker = Worker(on_done=self._job_done)
        # one worker per target, for its backups: targets never wait on each other
        self.backups: dict[str, Worker] = {}
        self.running: dict[str, float] = {}  # target -> wall time its backup started
        self.progress: dict[str, float] = {}  # target -> monotonic time of its last progress
        self.unprotected: dict[str, float] = {}  # target -> monotonic time a change waits since
        self.stall_alerted: set[str] = set()  # backup.stalled raised, until synced again
        self.restic_seen: set[str] = set()  # targets whose running restic has reported
        self.unlocked: set[str] = set()  # targets whose stale locks were removed since start
        self.wall_offset = time.time() - time.monotonic()  # its jumps are clock steps
        db_path = StateDir(Path(self.cfg.paths.state_dir)).root / "state.db"
        self.state_was_empty = not db_path.exists() or db_path.stat().st_size == 0
        self.db = StateDB(db_path, office=self.cfg.office.code)
        # where alerts go while state.db or its disk fails (the journal, /run/secops)
        self.fallback = Fallback(self.cfg.paths.state_dir)
        self.state_failed_at: float | None = None  # monotonic time of the last failure
        self.state_checked = self.clock.monotonic()  # last quick_check (one at start)
        self.told_directly: dict[str, float] = {}  # kind -> monotonic time of the message
        self.debouncer = Debouncer(self.cfg.backup.debounce_seconds,
                                   self.cfg.backup.max_delay_seconds)
        self.watcher: ChildWatcher | None = None
        self.scheduler: Any = None
        self.missing_roots: set[str] = set()
        self.monitor: Monitor | None = None
        self.dispatcher: Dispatcher | None = None
        self.last_event_id = 0
        self.next_outbox = 0.0
        self.outbox_busy = threading.Event()
        self.audit_alerted: tuple[Any, Any] | None = None
        self.weekly_submitted: str | None = None
        self.fim_state: FimState | None = None
        self.logins: LoginWatchThread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        raise_fd_limit(self.log)  # a fanotify event the kernel has no descriptor for is denied
        # An honest program's open waits for the gate thread, and the gate thread for the
        # interpreter lock: at the default 5 ms switch interval a monitor thread hashing a
        # file made every open in a watched folder wait up to 5 ms.
        sys.setswitchinterval(GATE_SWITCH_INTERVAL_S)
        self._check_folders()
        self._check_state()
        self.db.ensure_targets(t.name for t in self.cfg.backup.targets)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.last_event_id = self.db.last_event_id()  # only what happens from now on
        self._start_playbooks()
        self._start_guards()
        self._start_watching()
        self._submit_rescan("start")  # anything that changed while we were down
        self.scheduler = build_schedule(self.cfg, self._scheduled)
        self.db.audit("daemon.started", "daemon", {
            "pid": os.getpid(), "config": self.cfg.source, "watch": self.cfg.paths.watch,
            "targets": [t.name for t in self.cfg.backup.targets],
            "integrity": self.monitor.mode if self.monitor is not None else "off"})
        self._scheduled("audit_verify")  # the log as found at start
        notify.ready()
        self.log("INFO", f"secops daemon ready: watching {', '.join(self.cfg.paths.watch)}")
        ping = notify.watchdog_interval() or 10.0
        next_ping = next_tick = 0.0
        while not self.stop_requested.is_set():
            try:
                now = self.clock.monotonic()
                if now >= next_ping:
                    pinged = self._heartbeat()
                    self._check_roots()
                    next_ping = now + (min(ping, 10.0) if pinged else 1.0)
                if now >= next_tick:
                    self._tick_monitor()
                    next_tick = now + 1.0
                self._follow_clock()
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self._reload()
                self._drain(timeout=self._wait_time())
                self._take_logins()
                self._dispatch_events()
                self._deliver_outbox(now)
                self._maybe_weekly_report()
                self._collect()
                self._maybe_backup()
                self._retry_failing()
                self.scheduler.run_pending()
            except (SecopsError, OSError, sqlite3.Error) as e:
                # The one place the loop catches: log, alert if we can, keep running.
                if classify(e) is not None:
                    self._state_failed(e)  # state.db or its disk: said elsewhere
                else:
                    self.log("ERROR", f"daemon loop: {e}")
                    self._alert("daemon.error", "high", {"error": str(e)})
                self.stop_requested.wait(1.0)
        return self._shutdown()

    def _alert(self, kind: str, severity: str, details: dict[str, Any]) -> None:
        try:
            self.db.add_event(iso_utc(self.clock.now()), kind, "daemon", severity, details)
        except sqlite3.Error as e:  # e.g. the disk under state_dir is full
            self.log("ERROR", f"cannot record alert {kind}: {e}")
            self._state_failed(e, (kind, severity, details))

    def _state_failed(self, e: BaseException,
                      alert: tuple[str, str, dict[str, Any]] | None = None) -> None:
        """state.db or the disk under it fails: ``state.disk_full`` or ``state.corrupt``
        (once per episode) and any alert that could not be recorded go to the journal and
        the fallback file, and once an hour straight to the recipients (the outbox is on
        the failed disk). Replayed into state.db when it takes writes again."""
        kind = classify(e) or "state.corrupt"
        now = iso_utc(self.clock.now())
        mono = self.clock.monotonic()
        self.state_failed_at = mono
        if kind not in self.fallback.kinds():
            self.log("ERROR", f"{kind}: {self.db.path}: {e}; until it takes writes again, "
                     f"alerts are kept in {self.fallback.path} and this journal")
            self.fallback.add(now, kind, STATE_FAILURES[kind],
                              {"error": str(e), "paths": [str(self.db.path)]})
            if mono - self.told_directly.get(kind, -DIRECT_EVERY_S) >= DIRECT_EVERY_S:
                self.told_directly[kind] = mono
                self._tell_directly(kind, str(e))
        if alert is not None:
            a_kind, severity, details = alert
            self.log("ERROR", f"alert {a_kind} ({severity}) kept outside state.db: "
                     f"{pathtext_dumps(details)}")
            self.fallback.add(now, a_kind, severity, details)
        else:
            self.fallback.beat(now)

    def _tell_directly(self, kind: str, error: str) -> None:
        """The failure in one message to every recipient, in a thread (SMTP may hang)."""
        from secops.playbooks.notify import send_direct

        cfg = self.cfg
        what = {"state.disk_full": "hết dung lượng đĩa / state disk full",
                "state.corrupt": "hỏng / damaged"}[kind]
        subject = f"[secops] {cfg.office.code}: cơ sở dữ liệu trạng thái {what}"
        body = (f"secops trên máy chủ của {cfg.office.name} không ghi được cơ sở dữ liệu "
                f"trạng thái ({self.db.path}): {error}.\n"
                "Cảnh báo được giữ tạm trong /run/secops và nhật ký hệ thống (journalctl -u "
                "secops). Đề nghị kiểm tra ngay: df -h; secops status.\n\n"
                f"secops on the server of {cfg.office.name} cannot write its state database "
                f"({self.db.path}): {error}. Alerts are kept in /run/secops and the journal "
                "until it can. Check now: df -h; secops status.")

        def work() -> None:
            for r in send_direct(cfg, subject, body):
                self.log("INFO" if r.get("ok") else "ERROR",
                         f"{kind} told directly over {r.get('channel', '?')}: "
                         f"{'sent' if r.get('ok') else r.get('error')}")

        threading.Thread(target=work, daemon=True, name="secops-tell").start()

    def _check_state_disk(self) -> None:
        """A state disk with next to no room left is full already: SQLite may still fit a
        heartbeat into its WAL while the manifests, the restic cache and the audit log no
        longer fit (each backup then fails with a reason nobody reads)."""
        import shutil

        free = shutil.disk_usage(self.db.path.parent).free
        if free < STATE_FREE_MIN_BYTES:
            raise OSError(errno.ENOSPC, f"only {free // 1024} KiB left on the disk under "
                          f"{self.db.path.parent}")
        mono = self.clock.monotonic()
        if mono - self.state_checked >= STATE_CHECK_EVERY_S:
            # damage in pages the daemon seldom reads (old history) would otherwise wait
            # for the weekly report or a restart to be seen
            self.state_checked = mono
            self._quick_check()

    def _quick_check(self) -> None:
        problem = self.db.quick_check()
        if problem is not None:
            raise sqlite3.DatabaseError(f"database disk image is malformed ({problem})")

    def _state_recovered(self) -> None:
        """state.db takes writes again, with room on its disk: the alerts kept outside it
        go into its events (the playbooks and the outbox take them from there), and a
        rescan finds the changes whose record failed."""
        if not self.fallback.active or (
                self.state_failed_at is not None and
                self.clock.monotonic() - self.state_failed_at < RECOVERED_AFTER_S):
            return
        import shutil

        if shutil.disk_usage(self.db.path.parent).free < RECOVER_FREE_BYTES:
            return
        if "state.corrupt" in self.fallback.kinds():
            # a damaged database may still take a heartbeat into its WAL: it is back only
            # once it is sound (moved aside and started afresh, or repaired)
            try:
                self._quick_check()
            except sqlite3.DatabaseError as e:
                self._state_failed(e)
                return
        doc = self.fallback.doc or {}
        alerts = list(doc.get("alerts", []))
        for a in alerts:
            self.db.add_event(str(a["time"]), str(a["kind"]), str(a.get("source", "daemon")),
                              str(a["severity"]), {**a.get("details", {}), "kept_outside": True})
        self.db.audit("state.recovered", "daemon", {
            "since": doc.get("since"), "alerts": len(alerts),
            "dropped": doc.get("dropped", 0)})
        self.fallback.clear()
        self.state_failed_at = None
        self.log("INFO", f"state.db takes writes again: {len(alerts)} alert(s) kept outside it "
                 "are recorded; rescanning for changes not recorded meanwhile")
        self._submit_rescan("state recovered")

    def _start_playbooks(self) -> None:
        from secops.playbooks.dispatch import Dispatcher

        if self.dispatcher is not None:
            self.dispatcher.close(timeout=1.0)
        self.dispatcher = Dispatcher(self.cfg, self.log)
        for problem in self.dispatcher.problems:
            self._alert("playbook.invalid", "high", {"problem": problem})

    def _maybe_weekly_report(self) -> None:
        """Every Monday morning (by the daemon's clock): the report of the week that ended."""
        from secops.daemon.plan import weekly_report_due

        week = weekly_report_due(self.cfg, self.clock.now())
        if week is None or week == self.weekly_submitted:
            return
        self.weekly_submitted = week
        cfg, clock = self.cfg, self.clock

        def work() -> Any:
            from secops.reports.weekly import run_weekly

            return run_weekly(cfg, clock, week=week)

        self.worker.submit(Job("weekly_report", work, {"week": week}))

    def _playbook_handles(self, kind: str) -> bool:
        from secops.playbooks.dispatch import matches

        return self.dispatcher is not None and any(
            matches(pb, {"kind": kind, "details": {}}) for pb in self.dispatcher.playbooks)

    def _dispatch_events(self) -> None:
        """Every new event (from the detectors, the CLI, the daemon itself) to the
        playbooks; a dozen rows at most per turn of the loop, so the loop stays quick."""
        if self.dispatcher is None:
            return
        for event_id, event in self.db.events_after(self.last_event_id, limit=50):
            self.last_event_id = event_id
            fired = self.dispatcher.handle(event)
            if fired:
                self.log("INFO", f"{event['kind']}: playbook(s) {', '.join(fired)}")

    def _deliver_outbox(self, now: float) -> None:
        """Queued notifications are retried in a thread of their own (SMTP may hang)."""
        if now < self.next_outbox or self.outbox_busy.is_set():
            return
        self.outbox_busy.set()
        self.next_outbox = now + 30.0
        cfg = self.cfg

        def work() -> Any:
            from secops.playbooks.notify import Outbox

            return Outbox(cfg).deliver_due()

        threading.Thread(target=self._outbox_thread, args=(work,), daemon=True,
                         name="secops-outbox").start()

    def _outbox_thread(self, work: Callable[[], Any]) -> None:
        try:
            results = work()
        except Exception as e:  # never fatal: the messages stay queued
            self.log("ERROR", f"outbox: {e}")
            return
        finally:
            self.outbox_busy.clear()
        for r in results or []:
            if r.get("gave_up"):
                self._alert_threadsafe("notify.failed", "high", r)
            elif r.get("ok"):
                self.log("INFO", f"queued message {r.get('id')} delivered ({r.get('channel')})")

    def _alert_threadsafe(self, kind: str, severity: str, details: dict[str, Any]) -> None:
        db = StateDB(self.db.path, office=self.cfg.office.code)
        try:
            db.add_event(iso_utc(self.clock.now()), kind, "daemon", severity, details)
        finally:
            db.close()

    def _start_monitor(self) -> None:
        if not self.cfg.integrity.enabled:
            self.monitor = None
            self.db.set_monitor(iso_utc(self.clock.now()), "off")
            return
        from secops.fim.monitor import Monitor
        from secops.fim.state import FimState

        self.fim_state = self.fim_state or FimState(self.db.path)
        self.monitor = Monitor(self.cfg, self.log,
                               on_event=lambda: self.events.put(Change("", "job")))
        self.monitor.start()
        # detection needs the baseline: wait for it (bounded) before watching starts
        if not self.monitor.ready.wait(timeout=600):
            self.log("WARNING", "the integrity baseline is still being built")

    def _start_guards(self) -> None:
        self._start_monitor()
        self._start_logins()

    def _start_logins(self) -> None:
        """The login watch (``secops/intrusion``): its findings are events like any."""
        from secops.intrusion.watch import LoginWatch, LoginWatchThread

        previous = None
        if self.logins is not None:
            self.logins.close()
            if not self.logins.thread.is_alive():  # a reload: what was counted goes on
                previous = self.logins.watch
            self.logins = None
        if not self.cfg.intrusion.enabled:
            return
        watch = LoginWatch(self.cfg, Path(self.cfg.paths.state_dir), previous=previous)
        for f in watch.prime():  # what came while the daemon was down
            self._record_finding(f)
        if watch.errors:  # a source that cannot be read: the others are watched
            self.log("ERROR", f"login watch: {'; '.join(str(e) for e in watch.errors)}")
        self.logins = LoginWatchThread(watch, self.log)
        self.logins.start()
        read = [*watch.sources, *([str(watch.samba)] if watch.samba else [])]
        self.log("INFO", f"login watch: {', '.join(read)}")

    def _take_logins(self) -> None:
        if self.logins is None:
            return
        while True:
            try:
                f = self.logins.out.get_nowait()
            except queue.Empty:
                return
            self._record_finding(f)

    def _record_finding(self, f: Finding) -> None:
        self.log("WARNING", f"{f.kind}: {pathtext_dumps(f.details)}")
        self._alert(f.kind, f.severity, {**f.details, "time": iso_epoch(f.time)})

    def _tick_monitor(self) -> None:
        if self.monitor is not None and self.fim_state is not None:
            self.monitor.tick(self.fim_state)

    def _check_roots(self) -> None:
        """A watched folder removed while running: alert once, keep running."""
        for root in self.cfg.paths.watch:
            gone = not Path(root).is_dir()
            if gone and root not in self.missing_roots:
                self.missing_roots.add(root)
                self.log("ERROR", f"watched folder {root} has disappeared; backups of it are "
                         "paused until it is back")
                self._alert("watch.folder_missing", "high", {"paths": [root]})
            elif not gone and root in self.missing_roots:
                self.missing_roots.discard(root)
                self.log("INFO", f"watched folder {root} is back; watching it again")
                if self.watcher is not None:
                    self.watcher.stop()
                self._start_watching()
                self._submit_rescan("folder back")

    def _shutdown(self) -> int:
        notify.stopping()
        self.log("INFO", "stopping: finishing or aborting the running job")
        deadline = time.monotonic() + 8.0
        workers = [self.worker, *self.backups.values()]
        if not all(w.idle() for w in workers):
            process.interrupt_all()
        self._drain(timeout=0)
        stopped = all([w.stop(timeout=max(0.1, deadline - time.monotonic())) for w in workers])
        self._collect()
        if self.watcher is not None:
            self.watcher.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self.logins is not None:
            self.logins.close()
        if self.dispatcher is not None:
            self.dispatcher.close(timeout=2.0)
        if self.fim_state is not None:
            self.fim_state.close()
        self.db.heartbeat(iso_utc(self.clock.now()), "stopped")
        self.db.audit("daemon.stopped", "daemon", {"pid": os.getpid(),
                                                    "job_finished": stopped})
        self.db.close()
        self.log("INFO", "stopped" if stopped else "stopped (a job was still running)")
        return 0

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested.set()

    def _reload(self) -> None:
        notify.reloading()
        try:
            cfg = self.load()
            self._check_folders(cfg)  # as at start: a mistyped folder is refused, not watched
        except SecopsError as e:
            self.log("ERROR", f"config reload failed, keeping the running config: {e}")
            self.db.audit("config.reload_failed", "daemon:SIGHUP", {"error": str(e)})
            self._alert("config.reload_failed", "high", {"error": str(e), "paths": []})
            notify.ready()
            return
        self.missing_roots &= set(cfg.paths.watch)  # a folder no longer watched is not missing
        old_watch = (self.cfg.paths.watch, self.cfg.paths.exclude)
        old_integrity = self.cfg.integrity
        self.cfg = cfg
        self.debouncer.debounce = cfg.backup.debounce_seconds
        self.debouncer.max_delay = cfg.backup.max_delay_seconds
        self.db.ensure_targets(t.name for t in cfg.backup.targets)
        if (cfg.paths.watch, cfg.paths.exclude) != old_watch or cfg.integrity != old_integrity:
            if self.monitor is not None:
                self.monitor.stop()
            self._start_monitor()
        if (cfg.paths.watch, cfg.paths.exclude) != old_watch:
            if self.watcher is not None:
                self.watcher.stop()
            self._start_watching()
            self._submit_rescan("reload")
        self.scheduler = build_schedule(cfg, self._scheduled)
        self._start_playbooks()  # edited playbooks count from the reload on
        self._start_logins()  # new thresholds, hours and sources
        self.db.audit("config.reloaded", "daemon:SIGHUP", {"config": cfg.source})
        self.log("INFO", "config reloaded")
        notify.ready()

    def _check_state(self) -> None:
        """A damaged state.db is refused at start, loudly (exit 3, the journal says what and
        how to recover), never run on: its freezes, incidents and baseline are evidence."""
        from secops.audit.log import segments

        audit = StateDir(Path(self.cfg.paths.state_dir)).audit
        if self.state_was_empty and any(p.stat().st_size for p in segments(audit)):
            # deleted or emptied: its history (targets, incidents, baseline) is gone; the
            # daemon starts afresh (a rescan backs everything up), and says so
            self.log("ERROR", f"state.lost: {self.db.path} was missing or empty although the "
                     "audit log has records: starting afresh")
            self.db.audit("state.lost", "daemon", {"path": str(self.db.path)})
            self._alert("state.lost", "critical", {"paths": [str(self.db.path)]})
        problem = self.db.quick_check()
        if problem is not None:
            raise OperationalError(
                f"the state database {self.db.path} is damaged ({problem}); the daemon does "
                "not run on it",
                hint=f"keep it for the investigation: mv {self.db.path} "
                     f"{self.db.path}.damaged, then start the daemon again (it rescans the "
                     "folders and backs them up; the audit log and the snapshots are kept "
                     "elsewhere)")

    def _check_folders(self, cfg: Config | None = None) -> None:
        cfg = cfg or self.cfg
        for i, w in enumerate(cfg.paths.watch):
            if not Path(w).is_dir():
                raise ConfigError(f"{cfg.source}: paths.watch[{i}]: {w} does not exist "
                                  "or is not a folder")

    def _start_watching(self) -> None:
        folders, limit = inotify_headroom(self.cfg.paths.watch)
        if limit is not None and folders > limit * 0.8:
            want = max(folders * 2, 524288)
            self.log("WARNING", f"{folders} folders to watch but fs.inotify.max_user_watches is "
                     f"{limit}: raise it with 'sysctl -w fs.inotify.max_user_watches={want}' "
                     "(and in /etc/sysctl.d/) or changes may be missed until a rescan")
        self.watcher = ChildWatcher(self.cfg.paths.watch, self.cfg.paths.exclude, self.events,
                                    self.force_polling, log=self.log)
        for w in self.watcher.start():
            self.log("WARNING", w)
        for root, problem in self.watcher.degraded.items():  # polled: say what to raise
            self._alert("watch.degraded", "high", {"paths": [root], "problem": problem})

    # -- the loop's steps ------------------------------------------------------------------

    def _wait_time(self) -> float:
        """At most POLL_S: events written by other processes (the CLI) are polled for."""
        deadline = self.debouncer.deadline()
        if deadline is None or self.missing_roots:
            return POLL_S  # nothing due, or due but waiting: never spin
        return max(0.0, min(POLL_S, deadline - self.clock.monotonic()))

    def _drain(self, timeout: float) -> None:
        """Persist every queued change before it counts as handled."""
        paths: set[str] = set()
        rescans = False
        try:
            first = self.events.get(timeout=timeout) if timeout > 0 else \
                self.events.get_nowait()
        except queue.Empty:
            return
        batch = [first]
        self._feed(first)
        until = time.monotonic() + GATHER_MAX_S  # a real wait on the queue, not the clock
        while len(batch) < 100_000 and batch[-1].kind not in ("job", "rescan"):
            wait = min(GATHER_QUIET_S, until - time.monotonic())
            if wait <= 0:
                break
            try:
                batch.append(self.events.get(timeout=wait))  # at once while any is queued
            except queue.Empty:
                break
            self._feed(batch[-1])
        for change in batch:
            if change.kind == "rescan":
                rescans = True
            elif change.kind != "job":
                paths.update(p for p in (change.path, change.dest) if p)
        paths.discard("")
        if paths:
            self.db.record_changes(paths, time.time(), stamp=True)
            self.debouncer.change(self.clock.monotonic())
        if rescans:
            self._submit_rescan("overflow or watch failure")
            if self.monitor is not None:
                self.monitor.request("rescan")  # at once, not at the next scheduled scan

    def _feed(self, change: Change) -> None:
        """Each change goes to the integrity monitor as it is taken (its judging waits for
        nobody's burst); only the state.db record waits for the burst's end."""
        if self.monitor is not None and change.kind not in ("job", "rescan"):
            self.monitor.feed(change.kind, change.path, change.dest)

    def _needing_backup(self) -> list[str]:
        last = self.db.last_change()
        now = time.time()
        names = []
        for t in self.cfg.backup.targets:
            st = self.db.target(t.name)
            if (st.synced_at or 0.0) >= last:
                continue
            if self._retry_waits(st.next_retry, now):
                continue  # failing: waits for its retry time
            names.append(t.name)
        return names

    def _maybe_backup(self) -> None:
        if not self.debouncer.due(self.clock.monotonic()):
            return
        if self.missing_roots:
            return  # never snapshot a tree whose folder vanished; the alert is out
        self.debouncer.fired()
        # a target still busy with its last backup takes this change when that one ends
        self._submit_backup(self._needing_backup(), "change")

    def _retry_failing(self) -> None:
        now = time.time()
        due = []
        rows = {t.name: self.db.target(t.name) for t in self.cfg.backup.targets}
        for t in self.cfg.backup.targets:
            st = rows[t.name]
            if st.next_retry is not None and not self._retry_waits(st.next_retry, now) and \
                    t.name not in self.running:
                due.append(t.name)
            self._alert_outage(t.name, st.failing_since, st.alerted, st.last_error, now)
        if due:
            self._submit_backup(due, "change")
        self._watch_unprotected(rows)

    def _retry_waits(self, next_retry: float | None, now: float) -> bool:
        """A failing target's retry time is still ahead; one further ahead than the longest
        backoff was set before the wall clock stepped back, and is due now."""
        return next_retry is not None and \
            now < next_retry <= now + self.cfg.daemon.retry_max_seconds

    def _follow_clock(self) -> None:
        """A step of the wall clock (NTP, a person at the BIOS): the interval schedules move
        with it, so they keep their pace (a backward hour held back every periodic backup,
        rescan and checkpoint for that hour); the daily ones keep their wall-clock time."""
        offset = time.time() - time.monotonic()
        step = offset - self.wall_offset
        self.wall_offset = offset
        if abs(step) < CLOCK_STEP_S:
            return
        from datetime import timedelta

        for job in getattr(self.scheduler, "jobs", []):
            if job.at_time is None and job.next_run is not None:
                job.next_run += timedelta(seconds=step)
        self.log("WARNING", f"the wall clock stepped {step:+.0f} s; interval schedules "
                 "follow it, changes and backups stay in order")
        self.db.audit("clock.stepped", "daemon", {"seconds": round(step, 3)})

    def _watch_unprotected(self, rows: dict[str, TargetState]) -> None:
        """``backup.stalled`` once per target when a watched change has waited longer than
        ``daemon.unprotected_alert_minutes`` for it, whatever holds it back (a hung
        server, a failing disk, a bug): silence itself is the alert. Timed on the monotonic
        clock: a step of the wall clock neither hides nor fakes it."""
        mono = self.clock.monotonic()
        last = self.db.last_change()
        bound = self.cfg.daemon.unprotected_alert_minutes * 60
        for t in self.cfg.backup.targets:
            st = rows[t.name]
            if (st.synced_at or 0.0) >= last or self.missing_roots:
                self.unprotected.pop(t.name, None)
                self.stall_alerted.discard(t.name)
                continue
            since = self.unprotected.setdefault(t.name, mono)
            if mono - since < bound or t.name in self.stall_alerted:
                continue
            self.stall_alerted.add(t.name)
            running = t.name in self.running
            details = {"target": t.name, "waiting_s": round(mono - since),
                       "backing_up": running, "error": st.last_error, "paths": [],
                       "last_progress_s": round(mono - self.progress[t.name])
                       if running and t.name in self.progress else None}
            self.log("ERROR", f"backup.stalled: a change has waited {(mono - since) / 60:.0f} "
                     f"minutes for target {t.name!r}" + (f": {st.last_error}"
                                                           if st.last_error else ""))
            self._alert("backup.stalled", "high", details)

    def _alert_outage(self, name: str, since: float | None, alerted: bool, error: str | None,
                      now: float) -> None:
        limit = self.cfg.daemon.outage_alert_minutes * 60
        if since is None or alerted or now - since < limit:
            return
        self.db.add_event(iso_utc(self.clock.now()), "target.unreachable", "daemon", "high",
                          {"target": name, "since_s": round(now - since), "error": error})
        self.db.mark_alerted(name)
        self.log("ERROR", f"target {name!r} has been failing for {(now - since) / 60:.0f} "
                 f"minutes: {error}")

    def _submit_backup(self, names: list[str], reason: str) -> None:
        """Each target's backup on that target's worker; one already running is left to
        finish (what it did not take is backed up when it ends)."""
        started = self.db.stamp(time.time())
        for name in names:
            if name in self.running:
                continue
            worker = self.backups.get(name)
            if worker is None:
                worker = self.backups[name] = Worker(on_done=self._job_done,
                                                     name=f"secops-backup-{name}")
            job = Job("backup", self._backup_work(name, reason),
                      {"started": started, "targets": [name], "reason": reason})
            if worker.submit(job):
                self.running[name] = time.time()  # for people (status); ``started`` orders
                self.progress[name] = self.clock.monotonic()
        if self.running:
            notify.status(f"backing up to {', '.join(sorted(self.running))}")
        self.db.set_targets_live(self._live())

    def _backup_work(self, name: str, reason: str) -> Callable[[], Any]:
        cfg, clock, progress, seen = self.cfg, self.clock, self.progress, self.restic_seen
        seen.discard(name)
        first = name not in self.unlocked  # the first backup since start: stale locks go
        self.unlocked.add(name)

        def moved() -> None:
            progress[name] = clock.monotonic()
            seen.add(name)

        def work() -> Any:
            if in_child(clock):  # what the manifest of a large tree takes goes with it
                return childjob.run("backup", cfg, name, reason, first, on_progress=moved)
            engine = Engine.from_config(cfg, clock)
            engine.restic.resolve_full_ids = False  # restic 0.14's short id is enough here
            engine.watched = True  # a change during the backup is the daemon's next backup
            return engine.backup(name, reason=reason, on_progress=lambda _t, _p: moved(),
                                 unlock_first=first)

        return work

    def _job_done(self) -> None:
        self.events.put(Change("", "job"))  # wake the loop now rather than at its timeout

    def _submit_rescan(self, why: str) -> None:
        if self.worker.queued("rescan"):
            return
        cfg = self.cfg

        def work() -> Any:
            return childjob.run("changed_paths", cfg.paths.state_dir, list(cfg.paths.watch),
                                list(cfg.backup_excludes))

        self.worker.submit(Job("rescan", work, {"why": why}))

    def _scheduled(self, kind: str) -> None:
        """Called by the scheduler: queue the job (the worker runs one at a time)."""
        cfg = self.cfg
        if kind == "backup":
            self._submit_backup([t.name for t in cfg.backup.targets], "schedule")
            return
        if kind == "drill" and self._playbook_handles("drill.due"):
            # the office's scheduled-drill playbook runs it (and says what to do on failure)
            self._alert("drill.due", "info", {"targets": [t.name for t in cfg.backup.targets],
                                              "paths": []})
            return
        if kind == "rescan":
            self._submit_rescan("schedule")
            if self.monitor is not None:
                self.monitor.request("rescan")
            return
        if kind == "fim_verify":
            if self.monitor is not None:
                self.monitor.request("verify")
            return
        if kind == "audit_checkpoint":
            self._audit_checkpoint()
            return
        from secops.daemon.plan import scheduled_work

        self.worker.submit(Job(kind, scheduled_work(cfg, kind, self.clock)))

    def _collect(self) -> None:
        for worker in (self.worker, *self.backups.values()):
            while True:
                try:
                    done = worker.done.get_nowait()
                except queue.Empty:
                    break
                self._handle(done)

    def _handle(self, done: Done) -> None:
        _give_back_memory()
        kind = done.job.kind
        if done.error is not None:
            self.log("ERROR", f"{kind} failed: {done.error}")
            if kind == "backup":
                for name in done.job.info["targets"]:
                    self.running.pop(name, None)
            return
        if kind == "rescan":
            changed: list[str] = done.result
            if changed:
                self.log("INFO", f"rescan ({done.job.info.get('why')}): {len(changed)} "
                         "changed file(s)")
                self.db.record_changes(changed, time.time(), stamp=True)
                self.debouncer.change(self.clock.monotonic())
            elif done.job.info.get("why") == "start" and self._needing_backup():
                self.debouncer.change(self.clock.monotonic())  # an interrupted backup
            return
        if kind == "backup":
            for name in done.job.info["targets"]:
                self.running.pop(name, None)
            results = done.result
            failed = record_results(self.db, results, started=done.job.info["started"],
                                    now=time.time(), now_iso=iso_utc(self.clock.now()),
                                    retry_max=self.cfg.daemon.retry_max_seconds,
                                    retry_min=self.cfg.daemon.retry_min_seconds)
            for r in results:
                level = "INFO" if r.ok else "ERROR"
                self.log(level, f"backup.{'completed' if r.ok else 'failed'} target={r.target} "
                         f"snapshot={(r.snapshot_id or '')[:8]} error={r.error or ''}")
                if not r.ok:  # each failure is an event (playbooks count them)
                    self._alert("backup.failed", "medium",
                                {"target": r.target, "error": r.error, "paths": []})
                if r.stalled:  # killed with its lock held: the next backup unlocks first
                    self.unlocked.discard(r.target)
                if r.ok:
                    self.stall_alerted.discard(r.target)  # the episode is over
                elif r.stalled and r.target not in self.stall_alerted:  # once per episode
                    self.stall_alerted.add(r.target)
                    self._alert("backup.stalled", "high", {
                        "target": r.target, "error": r.error, "backing_up": False,
                        "paths": [], "stall_seconds": self.cfg.backup.stall_seconds})
            self._write_metrics()
            self.db.set_targets_live(self._live())
            # a change this backup did not take (the debouncer may have fired while this
            # target was busy): the next one comes a debounce from now, as for any change
            if any(n in done.job.info["targets"] for n in self._needing_backup()) and \
                    not self.debouncer.pending:
                self.debouncer.change(self.clock.monotonic())
            if not self.running:
                notify.status(f"idle; {len(failed)} target(s) failing" if failed else "idle")
            return
        self._report_scheduled(kind, done.result)

    def _audit_checkpoint(self) -> None:
        from secops.audit.log import AuditLog, key_state_path

        state_dir = Path(self.cfg.paths.state_dir)
        if key_state_path(state_dir).exists():
            AuditLog(state_dir, self.cfg.office.code).checkpoint()

    def _report_scheduled(self, kind: str, result: Any) -> None:
        """A scheduled check, drill or retention that fails on a target raises an alert."""
        self.db.audit(f"schedule.{kind}", "daemon:schedule",
                      {"result": result if isinstance(result, (dict, list)) else str(result)})
        if kind == "audit_verify" and isinstance(result, dict):
            self._report_audit(result)
            return
        if kind == "logs_seal":
            self.log("INFO" if getattr(result, "ok", True) else "ERROR",
                     f"logs sealed and verified: {result}")
            return
        if kind == "review" and isinstance(result, dict):
            self._report_review(result)
            return
        if kind == "weekly_report" and isinstance(result, dict):
            if result.get("created"):
                self.log("INFO", f"weekly report {result.get('week')}: {result.get('pdf')}")
            return
        if kind in ("check", "drill") and isinstance(result, dict):
            bad = {name: outcome for name, outcome in result.items() if outcome != "ok"}
        elif kind == "retention" and isinstance(result, list):
            bad = {row["target"]: row["error"] for row in result if not row.get("ok", True)}
        else:
            bad = {}
        if not bad:
            self.log("INFO", f"{kind} finished: {result}")
            return
        event = {"check": "backup.check_failed", "drill": "drill.failed",
                 "retention": "backup.retention_failed"}.get(kind, f"{kind}.failed")
        self.log("ERROR", f"{event}: {bad}")
        self._alert(event, "high", {"targets": bad})

    def _report_review(self, result: dict[str, Any]) -> None:
        """The weekly risk review: each check newly failed at high or critical severity is
        an event (``review.finding``); the score goes to the journal."""
        self.log("INFO", f"risk review: score {result.get('score')} (was "
                 f"{result.get('previous_score')}), {len(result.get('new', []))} new and "
                 f"{len(result.get('fixed', []))} fixed finding(s)")
        for f in result.get("new_high", []):
            self._alert("review.finding", str(f["severity"]), {**f, "paths": []})

    def _report_audit(self, result: dict[str, Any]) -> None:
        if result.get("ok"):
            self.log("INFO", f"audit log verified: {result.get('records')} records, "
                     f"{result.get('checkpoints_verified', 0)} checkpoints")
            return
        key = (result.get("first_bad_seq"), result.get("problem"))
        if key == self.audit_alerted:
            return  # the same damage, already reported
        self.audit_alerted = key
        self.log("ERROR", f"audit.tampered: first bad record {key[0]} ({key[1]}): "
                 f"{result.get('detail')}")
        self._alert("audit.tampered", "critical", {
            "first_bad_seq": key[0], "problem": key[1], "detail": result.get("detail"),
            "paths": [str(Path(self.cfg.paths.state_dir) / "audit" / "audit.jsonl")]})

    def _heartbeat(self) -> bool:
        """Record the heartbeat; ping the systemd watchdog unless the open gate leaves opens
        waiting (a daemon that cannot answer them is killed, WatchdogSec=, and the kernel
        then allows them). False when the ping was held back (try again in a second)."""
        try:
            self._check_state_disk()
            self.db.heartbeat(iso_utc(self.clock.now()), "running", self._live())
        except (sqlite3.Error, OSError) as e:
            if classify(e) is None:
                raise
            self._state_failed(e)  # the loop lives: a restart cannot free a disk
        else:
            self._state_recovered()
        if self.monitor is not None and not self.monitor.gate_answering():
            self.log("ERROR", "the open gate is not answering: no watchdog ping")
            return False
        stuck = self._stuck_workers()
        if stuck:
            # the stall bound should have ended these backups long ago: a worker that
            # cannot be stopped is what the watchdog's restart is for
            self.log("ERROR", f"backup worker(s) of {', '.join(stuck)} stuck past the stall "
                     "bound: no watchdog ping")
            return False
        notify.watchdog()
        return True

    def _stuck_workers(self) -> list[str]:
        """Targets whose running restic has made no progress for well past the bound by
        which ``process.run``'s guard ends a silent one (SIGINT, then SIGKILL). Only once
        restic has spoken: the manifest's first hash of a big tree, before it, reports no
        progress and must not look stuck."""
        mono = self.clock.monotonic()
        bound = self.cfg.backup.stall_seconds + process.INTERRUPT_GRACE_S + STUCK_MARGIN_S
        return sorted(name for name in self.running if name in self.restic_seen and
                      mono - self.progress.get(name, mono) > bound)

    def _live(self) -> dict[str, dict[str, Any]]:
        """Per target: backing up since, last progress (wall times for people), stalled
        (no progress for ``stall_seconds``, or a change waiting past its bound)."""
        now, mono = time.time(), self.clock.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for t in self.cfg.backup.targets:
            started = self.running.get(t.name)
            moved = self.progress.get(t.name) if started is not None else None
            quiet = mono - moved if moved is not None else None
            out[t.name] = {
                "backing_up_since": iso_epoch(started) if started is not None else None,
                "last_progress": iso_epoch(now - quiet) if quiet is not None else None,
                "stalled": t.name in self.stall_alerted or
                (quiet is not None and quiet >= self.cfg.backup.stall_seconds)}
        return out

    def _write_metrics(self) -> None:
        try:
            write_metrics(self.cfg, self.db)
        except OSError as e:
            self.log("WARNING", f"cannot write the metrics file: {e}")


GATE_SWITCH_INTERVAL_S = 0.0005
CLOCK_STEP_S = 30.0  # a jump of the wall clock against the monotonic one this big is a step
DIRECT_EVERY_S = 3600.0  # a state failure told straight to the recipients at most this often
RECOVERED_AFTER_S = 30.0  # no state failure for this long before the kept alerts go back in
RECOVER_FREE_BYTES = 16 << 20  # and this much room on the state disk (no flapping)
STUCK_MARGIN_S = 120.0  # past the stall bound and its grace, a backup worker is stuck
STATE_FREE_MIN_BYTES = 4 << 20  # less room than this on the state disk is state.disk_full
STATE_CHECK_EVERY_S = 3600.0  # quick_check of state.db while the daemon runs


def in_child(clock: Clock) -> bool:
    """A backup runs in a child process (:mod:`secops.childjob`) on the system's clock; a
    test's own clock object stays in this process, and so does its backup."""
    return type(clock) is SystemClock


def raise_fd_limit(log: Log) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (systemd's default soft limit is 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as e:
            log("WARNING", f"cannot raise the open file limit from {soft} to {hard}: {e}")


def _give_back_memory() -> None:
    """Return freed heap to the OS after a job (a manifest of 50,000 files is ~100 MB)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


def run_daemon(load: Callable[[], Config], log: Log, force_polling: bool = False) -> int:
    return Service(load, log, force_polling=force_polling).run()
