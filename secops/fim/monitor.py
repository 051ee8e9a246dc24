"""The integrity monitor inside the daemon.

Threads, none of which blocks the daemon's loop:

- the **gate thread** and the **sentry thread** (as root, :mod:`secops.fim.guard`): every
  close-after-write in a watched folder arrives with the writer's pid and a descriptor onto
  the file; the file is probed through it and the detector sees the change *before* that
  process may open its next file (its next open is a permission event queued behind this
  one). On an alarm the writers are stopped right there and refused from then on. The gate's
  supervisor and warden (:mod:`secops.fim.gate`) answer for a gate that stops answering.
- the **monitor thread**: watchdog's events (renames, deletions, and every change when
  fanotify is not available) in batches; keeps the baseline current, checks the protected-
  file rules, raises events, and runs containment (every process stopped is recorded in a
  freeze and named in a ``ransomware.suspected`` event).
- a **containment thread** per freeze for the slow part (pinning the snapshot via restic).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from secops import childjob
from secops.clock import iso_epoch
from secops.config.schema import Config
from secops.fim import canary as decoys
from secops.fim import contain, procid
from secops.fim.baseline import Baseline, Record
from secops.fim.canary import is_canary, place
from secops.fim.detect import TEXTUAL, Detector, Observation, Verdict
from secops.fim.guard import Guard
from secops.fim.index import FileIndex
from secops.fim.probe import Probe
from secops.fim.protect import Protected
from secops.fim.scan import FimChange, ScanReport, fim_excludes, measure
from secops.fim.state import RELEASED, FimState, read_released
from secops.manifest.scan import excluded

Log = Callable[[str, str], None]  # level, message
BATCH_QUIET_S = 0.15
BATCH_MAX_S = 0.5
FAN_FRESH_S = 5.0  # a watchdog event this soon after fanotify saw the same write: not new
DEGRADED_EVERY_S = 60.0  # at most one integrity.gate_degraded event per reason this often


class Monitor:
    def __init__(self, cfg: Config, log: Log,
                 on_event: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.log = log
        self.on_event = on_event or (lambda: None)  # wakes the daemon loop (playbooks)
        self._emit_lock = threading.Lock()
        self.db_path = Path(cfg.paths.state_dir) / "state.db"
        self.excludes = fim_excludes(cfg.paths.exclude, cfg.paths.state_dir)
        self.index = FileIndex(self.db_path)
        self.detector = Detector(cfg.integrity.threshold, cfg.integrity.window_seconds,
                                 origin=self.index.get,
                                 slow_window=cfg.integrity.slow_window_seconds,
                                 epoch=partial(read_released, self.db_path.parent / RELEASED))
        self.canaries: dict[str, str] = {}  # path -> SHA-256 of each decoy secops placed
        self.q: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.fan_seen: dict[str, float] = {}
        # the memory of one attack, forgotten when its freeze is lifted
        self.alarmed: set[str] = set()  # finding keys (original paths) already alarmed on
        self.reported_pids: set[int] = set()
        self.rearmed: set[str] = set()  # decoys put back when the last freeze was lifted
        self.in_maintenance = False
        self.freeze_id: int | None = None
        self._lift_told: int | None = None
        self.guard = Guard(self)
        self.degraded_counts: dict[str, int] = {}
        self._degraded_at: dict[str, float] = {}
        self._degraded_lock = threading.Lock()
        self._released_seen = 0
        self.threads: list[threading.Thread] = []
        self.ready = threading.Event()
        self.mode = "inotify"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        from secops.fim.probe import warm

        warm()
        t = threading.Thread(target=self._main, name="secops-fim", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stop_event.set()
        self.q.put(("stop",))
        for t in self.threads:
            t.join(timeout=5)
        self.guard.stop()

    def feed(self, kind: str, path: str, dest: str = "") -> None:
        """From the daemon loop: one watchdog change (never blocks)."""
        self.q.put(("change", kind, path, dest))

    def request(self, what: str) -> None:
        """``"rescan"`` or ``"verify"`` (scheduled), run in the monitor thread."""
        self.q.put((what,))

    def tick(self, state: FimState) -> None:
        """From the daemon loop about once a second: maintenance, the freeze, the gate.

        The deny list drops processes that exited (their pid may come back as another
        process) and takes in the stopped processes of the active freeze (stopped by the CLI,
        a playbook, or before a restart). A freeze lifted by ``secops unfreeze`` (another
        process) ends the attack's memory in the monitor thread.
        """
        self.in_maintenance = state.maintenance() is not None
        active = state.active_freeze()
        self.guard.deny.refresh(active.processes if active else [],
                                active.id if active else None)
        known = self.freeze_id
        if known is not None and (active is None or active.id != known) and \
                self._lift_told != known:
            self._lift_told = known
            self.q.put(("lifted",))
        gate = self.guard.gate
        if gate is not None:
            released = gate.pulse.released
            if released > self._released_seen:
                self.degraded("warden_released",
                              {"allowed": released - self._released_seen})
                self._released_seen = released

    def gate_answering(self) -> bool:
        """For the systemd watchdog ping: the open gate answers (or there is none)."""
        return self.guard.answering()

    def degraded(self, reason: str, details: dict[str, Any]) -> None:
        """From any thread: the gate let opens through unjudged, or nearly did (counted;
        an ``integrity.gate_degraded`` event at most every DEGRADED_EVERY_S per reason)."""
        now = time.monotonic()
        with self._degraded_lock:
            count = self.degraded_counts[reason] = self.degraded_counts.get(reason, 0) + 1
            if now - self._degraded_at.get(reason, -DEGRADED_EVERY_S) < DEGRADED_EVERY_S:
                return
            self._degraded_at[reason] = now
        what = {"gate_overflow": "the gate's event queue overflowed: opens and writes went "
                "through unjudged; rescanning",
                "sentry_overflow": "the sentry's event queue overflowed: new folders may have "
                "gone unmarked; marking and rescanning",
                "dirs_overflow": "the folder-creation queue overflowed: new folders may have "
                "gone unmarked; marking",
                "out_of_fds": "no free file descriptor for a gate event: the kernel refused "
                "that open (raise LimitNOFILE=)",
                "warden_released": "the warden allowed opens the stalled gate left waiting",
                "judge_failed": "an error in secops left a write or an open unjudged "
                "(allowed); the threads judge the next ones",
                "sentry_failed": "the sentry stopped: new folders are marked from inotify, "
                "writes through hard links from outside the tree go unjudged",
                }.get(reason, reason)
        error = f": {details['error']}" if "error" in details else ""
        self.log("ERROR", f"integrity.gate_degraded: {what} ({count} so far){error}")
        self.q.put(("alert", "integrity.gate_degraded", "high",
                    {"reason": reason, "count": count, **details}))

    # -- the monitor thread ----------------------------------------------------------------

    def _main(self) -> None:
        self.baseline = Baseline(self.db_path)
        self.protected = Protected(self.cfg, self.baseline)
        self.state = FimState(self.db_path)
        from secops.daemon.state import StateDB

        self.events_db = StateDB(self.db_path, office=self.cfg.office.code)
        self.events_open = True
        self._set_state("starting")
        try:
            self._prepare()
            self._set_state("running")
            self.ready.set()
            self._serve()
        except Exception as e:  # the monitor must never take the daemon down...
            self.log("ERROR", f"integrity monitor stopped: {e!r}")
            # ...nor go silently: no detection, no containment from here on
            error = f"{type(e).__name__}: {e}"
            self._set_state("stopped", error)
            self.alert("integrity.monitor_stopped", "critical", {
                "error": error, "detector": self.mode,
                "consequence": "no ransomware detection, containment or integrity checks "
                               "until the daemon is restarted"})
            self.ready.set()
        else:
            self._set_state("stopped")
        finally:
            # nobody would record what the gate stopped: no gate without the monitor thread
            self.guard.stop()
            self.baseline.close()
            self.index.close()
            self.state.close()
            with self._emit_lock:
                self.events_open = False
                self.events_db.close()

    def _set_state(self, status: str, error: str | None = None) -> None:
        """For ``secops status``: is the monitor running (never fatal)."""
        from secops.clock import iso_utc

        with self._emit_lock:
            try:
                self.events_db.set_monitor(iso_utc(datetime.now().astimezone()), status, error)
            except Exception as e:  # e.g. disk full: logged
                self.log("ERROR", f"cannot record the integrity monitor's state: {e}")

    def alert(self, kind: str, severity: str, details: dict[str, Any]) -> None:
        """Record an event (DESIGN.md "Events") for ``secops status`` and the playbooks."""
        from secops.clock import iso_utc

        with self._emit_lock:
            if not self.events_open:
                return
            try:
                self.events_db.add_event(iso_utc(datetime.now().astimezone()), kind,
                                         "integrity", severity, details)
                self.on_event()
            except Exception as e:  # e.g. disk full: logged, never fatal
                self.log("ERROR", f"cannot record event {kind}: {e}")

    def _prepare(self) -> None:
        active = self.state.active_freeze()
        if active is not None:  # restarted during a freeze: its stopped writers stay denied
            self.freeze_id = active.id
            self.guard.deny.refresh(active.processes, active.id)
        if self.cfg.integrity.canaries:
            self.log("INFO", f"{self._place_canaries()} canary file(s) in place")
        if self.baseline.count() == 0:
            report = self._scan("baseline")
            self.log("INFO", f"integrity baseline: {report.files} files in "
                     f"{report.seconds:.1f} s")
            changes: list[FimChange] = []
        else:
            report = self._scan("scan")
            changes = report.changes
        self._reload_index()
        self.protected.init_shadows(self.baseline.records())
        if self.cfg.integrity.fanotify:
            self._start_fanotify()
        if changes:
            self.log("INFO", f"integrity: {len(changes)} change(s) while the daemon was down")
            self._judge_changes(changes, pid=None)

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                first = self.q.get(timeout=1.0)
            except queue.Empty:
                continue
            self._handle_batch(self._gather(first))
        self._record_last_alarms()

    def _gather(self, first: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A burst of work, acted on once it is over. With the gate on, the burst is over
        when the queue has been quiet for ``BATCH_QUIET_S`` (at most ``BATCH_MAX_S``): a
        save is a burst of a few dozen events within milliseconds, and hashing its file
        while it is still saving made each of its opens wait for the interpreter lock (the
        gate judges the writes themselves, inline). An alarm is acted on at once; without
        the gate (inotify alone detects) the burst is 50 ms."""
        gated = self.guard.gate is not None
        quiet = BATCH_QUIET_S if gated else 0.05
        start = time.monotonic()
        batch = [first]
        while len(batch) < 20_000 and batch[-1][0] not in ("alarm", "stop"):
            now = time.monotonic()
            wait = min(quiet, start + BATCH_MAX_S - now) if gated else start + quiet - now
            try:
                batch.append(self.q.get(timeout=max(0.0, wait)))
            except queue.Empty:
                break
        return batch

    def _record_last_alarms(self) -> None:
        """At stop: an alarm already queued (its writers stopped) is still recorded."""
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                return
            if item[0] == "alarm":
                self._on_verdict(item[1], item[1].paths, item[2])

    def _handle_batch(self, batch: list[tuple[Any, ...]]) -> None:
        # a maintenance window opened a moment ago counts for this very batch
        self.in_maintenance = self.state.maintenance() is not None
        changes: dict[str, tuple[str, str]] = {}
        for n, item in enumerate(batch):
            what = item[0]
            if what == "stop":
                for rest in batch[n:]:
                    if rest[0] == "alarm":
                        self._on_verdict(rest[1], rest[1].paths, rest[2])
                return
            if what == "alarm":
                self._on_verdict(item[1], item[1].paths, item[2])
            elif what == "alert":
                self.alert(item[1], item[2], item[3])
            elif what == "lifted":
                self._follow_freeze()
            elif what in ("rescan", "verify"):
                self._rescan("verify" if what == "verify" else "scan")
            elif what == "mark":
                self._mark_tree(item[1])
            elif what == "change":
                _, kind, path, dest = item
                if kind == "moved":
                    changes[path] = ("moved", dest)
                elif kind == "dir_created":
                    self._mark_tree(path)
                else:
                    prev = changes.get(path)
                    if prev is None or prev[0] != "moved":
                        changes[path] = (kind, "")
        if changes:
            self._apply(changes)

    def _apply(self, changes: dict[str, tuple[str, str]]) -> None:
        """Watchdog's view: measure what changed, feed the detector, update the baseline."""
        now = time.time()
        found: list[FimChange] = []
        upsert: list[Record] = []
        delete: list[str] = []
        for path, (kind, dest) in changes.items():
            if kind == "moved" and dest:
                found += self._moved(path, dest, now, upsert, delete)
                continue
            if is_canary(path):
                self._canary_changed(path, now)
                continue
            if self._excluded(path):
                continue
            before = self.index.get(path)
            after = _measure_quietly(path)
            if after is None:
                if before is not None and not os.path.exists(path):
                    self._observe(Observation(now, "deleted", path, before=before,
                                              folder_gone=_folder_gone(path)))
                    found.append(FimChange("deleted", path, before, None))
                    delete.append(path)
                    self.index.forget(path)
                continue
            if before is not None and before.sha256 == after.sha256 and \
                    (before.mode, before.uid, before.gid) == (after.mode, after.uid, after.gid):
                if before != after:
                    upsert.append(after)
                    self.index.remember(after)
                continue
            if not self._fan_fresh(path, now):
                self._observe(self._observation(now, path, before, after))
            if before is None:
                found.append(FimChange("added", path, None, after))
            elif before.sha256 != after.sha256:
                found.append(FimChange("modified", path, before, after))
            else:
                found.append(FimChange("meta", path, before, after))
            upsert.append(after)
            self.index.remember(after)
        self.baseline.apply(upsert, delete)
        self.index.committed()
        self._check_rules(found)

    def _moved(self, src: str, dest: str, now: float, upsert: list[Record],
               delete: list[str]) -> list[FimChange]:
        if is_canary(src) or is_canary(dest):
            self._canary_moved(src, dest, now)
            return []
        before = self.index.forget(src)
        if not dest:  # renamed into the excludes: gone, as far as we are concerned
            if before is not None:
                delete.append(src)
                self._observe(Observation(now, "deleted", src, before=before))
                return [FimChange("deleted", src, before, None)]
            return []
        replaced = self.index.get(dest)
        after = None if self._excluded(dest) else _measure_quietly(dest)
        if before is not None:
            delete.append(src)
        out: list[FimChange] = []
        if before is not None:
            self._observe(Observation(now, "renamed", dest, before=before, old_path=src))
        if after is None:
            if before is not None:
                out.append(FimChange("deleted", src, before, None))
            return out
        if replaced is not None and replaced.sha256 != after.sha256:
            # replaced by a rename (how office suites save): compare with what it replaced
            self._observe(self._observation(now, dest, replaced, after))
            out.append(FimChange("modified", dest, replaced, after))
        elif before is not None:
            if before.sha256 != after.sha256 and not self._fan_fresh(dest, now) and \
                    not self._fan_fresh(src, now):
                self._observe(self._observation(now, dest, before, after))  # renamed + changed
            out.append(FimChange("renamed", dest, before, after, old_path=src))
        else:
            if not self._fan_fresh(dest, now):
                self._observe(self._observation(now, dest, None, after))
            out.append(FimChange("added", dest, None, after))
        upsert.append(after)
        self.index.remember(after)
        return out

    def _observation(self, now: float, path: str, before: Record | None, after: Record
                     ) -> Observation:
        probe = Probe(after.ftype, after.parses, after.entropy, after.fp)
        sample = b""
        if before is None and after.size <= 65536 and after.ftype in TEXTUAL:
            with contextlib.suppress(OSError):
                sample = Path(path).read_bytes()[:4096]
        return Observation(now, "modified" if before else "added", path, before=before,
                           after=probe, text_sample=sample)

    def _reload_index(self) -> None:
        self.index.reload()

    def _renamed_from(self, fd: int) -> Record | None:
        """A file not (yet) known under its path: is it a known file renamed (same inode)?
        Renames reach us through inotify, later than the write that follows them."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        return self.index.by_inode(st.st_ino)

    def _observe(self, obs: Observation) -> None:
        verdict = self.detector.observe(obs, self.in_maintenance)
        if verdict is not None:
            self._on_verdict(verdict, verdict.paths, None)

    def _fan_fresh(self, path: str, now: float) -> bool:
        seen = self.fan_seen.get(path)
        return seen is not None and now - seen < FAN_FRESH_S

    def _excluded(self, path: str) -> bool:
        return any(excluded(p, path, self.excludes) for p in path.split("/") if p) or \
            excluded(os.path.basename(path), path, self.excludes)

    def _canary_changed(self, path: str, now: float) -> None:
        """A decoy's file written or gone; a file of that name secops did not place (a copy
        ``cp -r`` or ``unzip`` made) is nothing."""
        want = self.canaries.get(path)
        if want is None:
            return
        if os.path.lexists(path):
            if not decoys.intact(path, want):
                self._observe(Observation(now, "modified", path, canary=True))
            return
        self._canary_gone(path, now)

    def _canary_moved(self, src: str, dest: str, now: float) -> None:
        """Moved with its folder (same name, same content): the record follows. Renamed to
        another name, or replaced by another file: touched."""
        want = self.canaries.get(src)
        if want is not None:
            if dest and os.path.basename(dest) == os.path.basename(src) and \
                    decoys.intact(dest, want):
                del self.canaries[src]
                self.canaries[dest] = want
                decoys.save(self.baseline, self.canaries)
            elif not dest:  # into the excludes or out of the tree: gone, as far as we know
                self._canary_gone(src, now)
            else:
                self._observe(Observation(now, "renamed", dest, old_path=src, canary=True))
        replaced = self.canaries.get(dest)
        if dest and replaced is not None and not decoys.intact(dest, replaced):
            self._observe(Observation(now, "modified", dest, canary=True))

    def _canary_gone(self, path: str, now: float) -> None:
        """Deleted: as any deleted file (with its folder or alone); placed again by the next
        scan."""
        self.canaries.pop(path, None)
        decoys.save(self.baseline, self.canaries)
        self._observe(Observation(now, "deleted", path, folder_gone=_folder_gone(path)))

    def _place_canaries(self, alarm: bool = True) -> int:
        """Place the missing decoys (again, after a deletion); one found altered is an
        alarm at start (a rescan's alarm would repeat the one its events raised, and after
        an unfreeze freeze the tree again). Returns how many there are."""
        canaries, altered = place(self.cfg.paths.watch, self.cfg.integrity.canary_depth,
                                  self.cfg.paths.exclude, self.baseline)
        self.canaries = decoys.load(self.baseline)
        self.guard.watch_canary_reads(list(self.canaries))
        if altered and alarm:
            self._on_verdict(Verdict(10.0, [], time.time(), True), altered, None)
        return len(canaries)

    def _rescan(self, mode: str) -> None:
        if self.cfg.integrity.canaries and self.freeze_id is None:
            self._place_canaries(alarm=False)
        report = self._scan(mode)
        for path in report.unreadable:
            self.log("WARNING", f"integrity {mode}: unreadable: {path}")
        self._reload_index()
        if report.changes:
            self.log("INFO", f"integrity {mode}: {len(report.changes)} change(s)")
            self._judge_changes(report.changes, pid=None)
        stealth = [c for c in report.changes if c.stealth]
        if stealth:
            self.alert("integrity.unauthorized_change", "high", {
                "paths": [c.path for c in stealth], "reason": "content changed behind "
                "unchanged size and modification time",
                "changes": [c.as_json() for c in stealth[:50]]})

    def _scan(self, mode: str) -> ScanReport:
        """A scan of the whole tree, in a child process (:mod:`secops.childjob`): the
        baseline and the tree's records it holds go with it. The index is reloaded after."""
        report: ScanReport = childjob.run("fim_scan", str(self.db_path),
                                          list(self.cfg.paths.watch), list(self.excludes), mode)
        return report

    def _judge_changes(self, changes: Sequence[FimChange], pid: int | None) -> None:
        now = time.time()
        for c in changes:
            if c.kind in ("modified", "added") and c.after is not None:
                self._observe(self._observation(now, c.path, c.before, c.after))
            elif c.kind == "renamed":
                self._observe(Observation(now, "renamed", c.path, before=c.before,
                                          old_path=c.old_path, pid=pid))
            elif c.kind == "deleted":
                self._observe(Observation(now, "deleted", c.path, before=c.before, pid=pid))
        self._check_rules(list(changes))

    # -- protected files -------------------------------------------------------------------

    def _check_rules(self, changes: Sequence[FimChange]) -> None:
        bad = self.protected.judge(changes, datetime.now(), self.in_maintenance)
        if bad:
            self.log("WARNING", f"integrity.unauthorized_change: {len(bad)} protected "
                     f"file(s) changed outside their windows, e.g. {bad[0]['path']}")
            self.alert("integrity.unauthorized_change", "high",
                       {"paths": [b["path"] for b in bad], "changes": bad[:100]})

    # -- fanotify ----------------------------------------------------------------------------

    def _start_fanotify(self) -> None:
        if self.guard.start():
            self.mode = "fanotify"
            self.guard.watch_canary_reads(list(self.canaries))
            self.log("INFO", "fanotify: writer pids and the open gate are on")

    def _mark_tree(self, top: str) -> None:
        self.guard.mark_tree(top)

    # -- alarms and containment ------------------------------------------------------------

    def _on_verdict(self, verdict: Verdict, paths: Sequence[str],
                    stopped: list[dict[str, Any]] | None) -> None:
        """An alarm: contain, record, raise ``ransomware.suspected``.

        ``stopped`` are the processes the gate or sentry thread stopped for it. Each one is
        recorded in the freeze (a new one, or the active one it joins) and named in an event,
        however many alarms came before: a stop is never silent. Without a new stop, more
        evidence on files already alarmed on, or during the freeze of the same writers, only
        goes to the log. The attack's memory ends when its freeze is lifted.
        """
        self._follow_freeze()
        processes = [_described(p) for p in stopped or []]
        newly = [p for p in processes if p.get("stopped")]
        keys = {f.key for f in verdict.findings}
        if not newly and self._put_back(verdict):
            # the attack's own last word (its killed writer closing a decoy, seen after the
            # lift): the decoy holds secops' content again, nobody is writing it
            self.log("INFO", f"decoy(s) {sorted(keys)} written before the freeze was lifted "
                     "and put back since: not a new alarm")
            return
        if not newly:
            if keys and keys <= self.alarmed:
                # the same files seen again through the other channel (a rename reported by
                # inotify after fanotify judged the write): not a new alarm
                self.log("INFO", f"further evidence on {len(keys)} file(s) already alarmed on")
                return
            if self.freeze_id is not None and not set(verdict.pids) - self.reported_pids:
                # contained already, and no new writer: more of the same attack (e.g. inotify
                # catching up with what was written before the freeze) joins the first alarm
                self.log("INFO", f"further evidence during freeze {self.freeze_id}: "
                         f"{len(keys)} file(s), score {verdict.score}")
                return
        self.alarmed |= keys
        self.reported_pids |= set(verdict.pids)
        details: dict[str, Any] = {
            "score": verdict.score, "paths": list(paths)[:200],
            "indicators": sorted({i for f in verdict.findings for i in f.indicators}),
            "findings": [f.as_json() for f in verdict.findings][:100],
            "first_seen": _iso(verdict.first_time),
            "processes": processes or [contain.describe_process(p) for p in verdict.pids],
            "detector": self.mode}
        if verdict.canary:
            self.alert("canary.touched", "critical",
                       {"paths": [p for p in paths if is_canary(p)] or list(paths),
                        "ransomware": True})  # the ransomware.suspected alarm follows
        self.log("ERROR", f"ransomware.suspected score={verdict.score} files={len(paths)} "
                 f"pids={verdict.pids}")
        if self.cfg.integrity.contain:  # contain first: the event fires the playbooks,
            recorded = self._freeze(verdict, processes)  # whose freeze then joins this one
            details["processes"] = recorded or details["processes"]
            details["freeze_id"] = self.freeze_id
        self.alert("ransomware.suspected", "critical", details)

    def _follow_freeze(self) -> None:
        """Take in the freeze state (the CLI and playbooks freeze and lift it too)."""
        active = self.state.active_freeze()
        if self.freeze_id is not None and (active is None or active.id != self.freeze_id):
            self.log("INFO", f"freeze {self.freeze_id} lifted; writers may open files again "
                     "and a new alarm starts afresh")
            self.alarmed.clear()
            self.reported_pids.clear()
            self.detector.forget()
            if active is None:  # (under another freeze the folders are still immutable)
                self._rearm_decoys()
        self.freeze_id = active.id if active is not None else None

    def _rearm_decoys(self) -> None:
        """After a lift: each decoy the attack wrote holds secops' content again (the
        pinned snapshot and the evidence keep what the attack did), so the decoys guard the
        office from now on and a restart raises no alarm over the past attack."""
        self.rearmed = set()
        for path, want in list(self.canaries.items()):
            if decoys.intact(path, want):
                continue
            digest = decoys.rearm(path)
            if digest is None:
                self.log("WARNING", f"decoy {path} was written by the attack and cannot be "
                         "put back (not a file of its own); the next scan places it anew "
                         "if it is gone")
                continue
            self.canaries[path] = digest
            self.rearmed.add(path)
        if self.rearmed:
            decoys.save(self.baseline, self.canaries)
            self.log("INFO", f"{len(self.rearmed)} decoy(s) the attack wrote put back: "
                     f"{sorted(self.rearmed)}")

    def _put_back(self, verdict: Verdict) -> bool:
        """A decoy alarm on nothing but decoys put back at the last lift, each intact now."""
        paths = set(verdict.paths)
        return bool(paths) and verdict.canary and paths <= self.rearmed and \
            all(decoys.intact(p, self.canaries.get(p, "")) for p in paths)

    def _freeze(self, verdict: Verdict, stopped: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Contain now: record the processes stopped (and stop the other writers), freeze the
        trees or join the active freeze; the processes recorded (for the alarm's evidence)."""
        # without any writer pid (inotify only), whoever writes under the folders is stopped
        result = contain.freeze(self.cfg, self.state, verdict.pids,
                                f"ransomware.suspected score {verdict.score}", stopped=stopped)
        self.freeze_id = result["freeze_id"]
        self._lift_told = None
        self.rearmed = set()
        if result["already"]:
            new = [p["pid"] for p in stopped if p.get("stopped")]
            if new:
                self.log("ERROR", f"integrity.frozen: freeze {self.freeze_id}: "
                         f"{len(new)} more process(es) stopped and recorded: pids {new}")
            return list(result["processes"])
        self.log("ERROR", f"integrity.frozen: freeze {self.freeze_id}: "
                 f"{result['paths_frozen']} paths immutable, {len(result['processes'])} "
                 "process(es) stopped; undo with 'secops unfreeze' after review")
        self.alert("integrity.frozen", "critical", result)
        t = threading.Thread(target=self._pin, args=(verdict.first_time, self.freeze_id),
                             name="secops-pin", daemon=True)
        t.start()
        return list(result["processes"])

    def _pin(self, before: float, freeze_id: int) -> None:
        finished = contain.finished_before(self.cfg, before)
        try:
            pinned = contain.pin_pre_attack(self.cfg, before, f"freeze-{freeze_id}", finished)
        except Exception as e:
            pinned = {"error": str(e)}
        state = FimState(self.db_path)
        try:
            state.set_snapshots(freeze_id, pinned)
        finally:
            state.close()
        self.log("INFO", f"freeze {freeze_id}: pre-attack snapshots {pinned}")
        self.alert("integrity.snapshot_pinned", "info",
                   {"freeze_id": freeze_id, "snapshots": pinned})


def _described(stopped: dict[str, Any]) -> dict[str, Any]:
    """A stop record with what /proc says of the process (if it is still the one stopped)."""
    info = dict(stopped)
    pid, start = int(stopped["pid"]), stopped.get("start")
    if start is not None and procid.start_time(pid) == start:
        info = {**contain.describe_process(pid), **stopped}
    return info


def _folder_gone(path: str) -> bool:
    """A deleted file's folder is gone too: removed with it (``rm -rf``), not picked out."""
    return not os.path.isdir(os.path.dirname(path))


def _measure_quietly(path: str) -> Record | None:
    try:
        return measure(path)
    except OSError:
        return None


_iso = iso_epoch
