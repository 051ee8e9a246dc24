"""The integrity monitor inside the daemon.

Three threads, none of which blocks the daemon's loop:

- the **fanotify thread** (as root): every close-after-write in a watched folder arrives with
  the writer's pid and a descriptor onto the file; the file is probed through it and the
  detector sees the change *before* that process may open its next file (its next open is a
  permission event queued behind this one). On an alarm the writers are stopped right here.
- the **monitor thread**: watchdog's events (renames, deletions, and every change when
  fanotify is not available) in batches; keeps the baseline current, checks the protected-
  file rules, raises events, and runs containment.
- a **containment thread** per freeze for the slow part (pinning the snapshot via restic).
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from secops.clock import iso_epoch
from secops.config.schema import Config
from secops.fim import contain
from secops.fim.baseline import Baseline, Record
from secops.fim.canary import is_canary, place
from secops.fim.detect import TEXTUAL, Detector, Observation, Verdict
from secops.fim.probe import Probe, probe_fd
from secops.fim.protect import Protected
from secops.fim.scan import FimChange, fim_excludes, measure
from secops.fim.scan import run as run_scan
from secops.fim.state import FimState
from secops.manifest.scan import excluded

Log = Callable[[str, str], None]  # level, message
FAN_FRESH_S = 5.0  # a watchdog event this soon after fanotify saw the same write: not new


class Monitor:
    def __init__(self, cfg: Config, log: Log,
                 on_event: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.log = log
        self.on_event = on_event or (lambda: None)  # wakes the daemon loop (playbooks)
        self._emit_lock = threading.Lock()
        self.db_path = Path(cfg.paths.state_dir) / "state.db"
        self.excludes = fim_excludes(cfg.paths.exclude, cfg.paths.state_dir)
        self.index: dict[str, Record] = {}
        self.by_inode: dict[int, str] = {}
        self.detector = Detector(cfg.integrity.threshold, cfg.integrity.window_seconds,
                                 origin=self.index.get)
        self.q: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.stopped_pids: set[int] = set()
        self.fan_seen: dict[str, float] = {}
        self.alarmed: set[str] = set()  # finding keys (original paths) already alarmed on
        self.reported_pids: set[int] = set()
        self.in_maintenance = False
        self.freeze_id: int | None = None
        self.fan: Any = None
        self.threads: list[threading.Thread] = []
        self.ready = threading.Event()
        self.mode = "inotify"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        t = threading.Thread(target=self._main, name="secops-fim", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stop_event.set()
        self.q.put(("stop",))
        for t in self.threads:
            t.join(timeout=5)
        if self.fan is not None:
            self.fan.close()

    def feed(self, kind: str, path: str, dest: str = "") -> None:
        """From the daemon loop: one watchdog change (never blocks)."""
        self.q.put(("change", kind, path, dest))

    def request(self, what: str) -> None:
        """``"rescan"`` or ``"verify"`` (scheduled), run in the monitor thread."""
        self.q.put((what,))

    def tick(self, state: FimState) -> None:
        """From the daemon loop about once a second: maintenance and freeze state."""
        self.in_maintenance = state.maintenance() is not None
        active = state.active_freeze()
        if active is None and self.freeze_id is not None:
            self.log("INFO", f"freeze {self.freeze_id} lifted; writers may open files again")
            self.freeze_id = None
            self.stopped_pids.clear()

    # -- the monitor thread ----------------------------------------------------------------

    def _main(self) -> None:
        self.baseline = Baseline(self.db_path)
        self.protected = Protected(self.cfg, self.baseline)
        self.state = FimState(self.db_path)
        from secops.daemon.state import StateDB

        self.events_db = StateDB(self.db_path, office=self.cfg.office.code)
        self.events_open = True
        try:
            self._prepare()
            self.ready.set()
            self._serve()
        except Exception as e:  # the monitor must never take the daemon down
            self.log("ERROR", f"integrity monitor stopped: {e!r}")
            self.alert("daemon.error", "high", {"error": f"integrity monitor: {e}"})
            self.ready.set()
        finally:
            self.baseline.close()
            self.state.close()
            with self._emit_lock:
                self.events_open = False
                self.events_db.close()

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
        roots = self.cfg.paths.watch
        active = self.state.active_freeze()
        if active is not None:  # restarted during a freeze: its stopped writers stay denied
            self.freeze_id = active.id
            self.stopped_pids |= {int(p["pid"]) for p in active.processes if p.get("stopped")}
        if self.cfg.integrity.canaries:
            canaries, altered = place(roots, self.cfg.integrity.canary_depth,
                                      self.cfg.paths.exclude, self.baseline)
            if altered:
                self._on_verdict(Verdict(10.0, [], time.time(), True), altered, None)
            self.log("INFO", f"{len(canaries)} canary file(s) in place")
        if self.baseline.count() == 0:
            report = run_scan(roots, self.excludes, self.baseline, "baseline")
            self.log("INFO", f"integrity baseline: {report.files} files in "
                     f"{report.seconds:.1f} s")
            changes: list[FimChange] = []
        else:
            report = run_scan(roots, self.excludes, self.baseline, "scan")
            changes = report.changes
        self._reload_index()
        self.protected.init_shadows(self.index)
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
            batch = [first]
            deadline = time.monotonic() + 0.05  # gather a burst, then act on it
            while len(batch) < 20_000:
                try:
                    batch.append(self.q.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self._handle_batch(batch)

    def _handle_batch(self, batch: list[tuple[Any, ...]]) -> None:
        # a maintenance window opened a moment ago counts for this very batch
        self.in_maintenance = self.state.maintenance() is not None
        changes: dict[str, tuple[str, str]] = {}
        for item in batch:
            what = item[0]
            if what == "stop":
                return
            if what == "alarm":
                self._on_verdict(item[1], item[1].paths, item[2])
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
                if kind in ("deleted", "modified", "closed", "created") and \
                        not self._canary_intact(path):
                    self._observe(Observation(now, "modified", path, canary=True))
                continue
            if self._excluded(path):
                continue
            before = self.index.get(path)
            after = _measure_quietly(path)
            if after is None:
                if before is not None and not os.path.exists(path):
                    self._observe(Observation(now, "deleted", path, before=before))
                    found.append(FimChange("deleted", path, before, None))
                    delete.append(path)
                    self._forget(path)
                continue
            if before is not None and before.sha256 == after.sha256 and \
                    (before.mode, before.uid, before.gid) == (after.mode, after.uid, after.gid):
                if before != after:
                    upsert.append(after)
                    self._remember(after)
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
            self._remember(after)
        self.baseline.apply(upsert, delete)
        self._check_rules(found)

    def _moved(self, src: str, dest: str, now: float, upsert: list[Record],
               delete: list[str]) -> list[FimChange]:
        if is_canary(src) or is_canary(dest):
            self._observe(Observation(now, "renamed", dest, old_path=src, canary=True))
            return []
        before = self._forget(src)
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
        self._remember(after)
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
        self.index.clear()
        self.index.update(self.baseline.load())
        self.by_inode = {r.inode: p for p, r in self.index.items()}

    def _remember(self, rec: Record) -> None:
        old = self.index.get(rec.path)
        if old is not None and self.by_inode.get(old.inode) == rec.path:
            del self.by_inode[old.inode]
        self.index[rec.path] = rec
        self.by_inode[rec.inode] = rec.path

    def _forget(self, path: str) -> Record | None:
        old = self.index.pop(path, None)
        if old is not None and self.by_inode.get(old.inode) == path:
            del self.by_inode[old.inode]
        return old

    def _renamed_from(self, fd: int) -> Record | None:
        """A file not (yet) known under its path: is it a known file renamed (same inode)?
        Renames reach us through inotify, later than the write that follows them."""
        try:
            st = os.fstat(fd)
        except OSError:
            return None
        path = self.by_inode.get(st.st_ino)
        return self.index.get(path) if path else None

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

    def _canary_intact(self, path: str) -> bool:
        import hashlib
        import json

        expected = json.loads(self.baseline.meta("canaries") or "{}").get(path)
        try:
            return expected is not None and \
                hashlib.sha256(Path(path).read_bytes()).hexdigest() == expected
        except OSError:
            return False

    def _rescan(self, mode: str) -> None:
        report = run_scan(self.cfg.paths.watch, self.excludes, self.baseline, mode)
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
        from secops.fim.fanotify import Fanotify, FanotifyUnavailable

        try:
            self.fan = Fanotify(gate=True)
        except FanotifyUnavailable as e:
            self.log("WARNING", f"fanotify unavailable ({e.message}); ransomware detection "
                     "works from inotify alone: no writer pids, slower containment")
            return
        for root in self.cfg.paths.watch:
            self._mark_tree(root)
        t = threading.Thread(target=self._fan_loop, name="secops-fanotify", daemon=True)
        t.start()
        self.threads.append(t)
        self.mode = "fanotify"
        self.log("INFO", "fanotify: writer pids and the open gate are on")

    def _mark_tree(self, top: str) -> None:
        if self.fan is None:
            return
        for folder, dirs, _files in os.walk(top):
            dirs[:] = [d for d in dirs
                       if not excluded(d, os.path.join(folder, d), self.excludes)]
            try:
                self.fan.watch_dir(folder)
            except FileNotFoundError:
                continue  # removed while we walked
            except OSError as e:
                self.log("WARNING", f"fanotify: {e}")
                if e.errno == errno.ENOSPC:
                    return  # out of marks: the rest is inotify's

    def _fan_loop(self) -> None:
        try:
            self.fan.run(self._on_fan, self.stop_event)
        except Exception as e:
            self.log("ERROR", f"fanotify thread stopped: {e!r}; inotify carries on")
        finally:
            self.fan.close()  # releases any open still waiting on the gate
            self.mode = "inotify"

    def _on_fan(self, ev: Any) -> bool:
        """In the fanotify thread: keep it lean; never open a watched file here."""
        if ev.kind == "open_perm":
            return ev.pid not in self.stopped_pids
        if ev.kind == "overflow":
            self.q.put(("rescan",))
            return True
        path = ev.path
        if ev.kind != "close_write" or not path:
            return True
        now = time.time()
        if is_canary(path):
            obs = Observation(now, "modified", path, pid=ev.pid, canary=True)
        else:
            if self._excluded(path):
                return True
            try:
                size = os.fstat(ev.fd).st_size
                probe = probe_fd(ev.fd, size)
                sample = os.pread(ev.fd, 4096, 0) if size <= 65536 and \
                    probe.ftype in TEXTUAL and path not in self.index else b""
            except OSError:
                return True
            before = self.index.get(path) or self._renamed_from(ev.fd)
            obs = Observation(now, "modified" if before else "added", path, before=before,
                              after=probe, pid=ev.pid, text_sample=sample)
            self.fan_seen[path] = now
            if len(self.fan_seen) > 50_000:
                self.fan_seen.clear()
        verdict = self.detector.observe(obs, self.in_maintenance)
        if verdict is not None:
            pids = verdict.pids
            if self.cfg.integrity.contain and pids:
                self.stopped_pids.update(pids)
                stopped = contain.stop_processes(pids)
            else:
                stopped = [contain.describe_process(p) for p in pids]
            self.q.put(("alarm", verdict, stopped))
            return ev.pid not in self.stopped_pids
        return True

    # -- alarms and containment ------------------------------------------------------------

    def _on_verdict(self, verdict: Verdict, paths: Sequence[str],
                    processes: list[dict[str, Any]] | None) -> None:
        keys = {f.key for f in verdict.findings}
        if keys and keys <= self.alarmed:
            # the same files seen again through the other channel (a rename reported by
            # inotify after fanotify judged the write): not a new alarm
            self.log("INFO", f"further evidence on {len(keys)} file(s) already alarmed on")
            return
        self.alarmed |= keys
        new_pids = set(verdict.pids) - self.stopped_pids - self.reported_pids
        if self.freeze_id is not None and not new_pids:
            # contained already, and no new writer: more of the same attack (e.g. inotify
            # catching up with what was written before the freeze) joins the first alarm
            self.log("INFO", f"further evidence during freeze {self.freeze_id}: "
                     f"{len(keys)} file(s), score {verdict.score}")
            return
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
            stopped = self._freeze(verdict)  # whose freeze then joins this one
            details["processes"] = stopped or details["processes"]
        self.alert("ransomware.suspected", "critical", details)

    def _freeze(self, verdict: Verdict) -> list[dict[str, Any]]:
        """Contain now; the processes it stopped (for the alarm's evidence)."""
        # the writers the fanotify thread stopped are stopped again (a no-op) and recorded;
        # without any writer pid (inotify only), whoever writes under the folders is stopped
        result = contain.freeze(self.cfg, self.state, verdict.pids,
                                f"ransomware.suspected score {verdict.score}")
        self.stopped_pids.update(p["pid"] for p in result["processes"] if p.get("stopped"))
        self.freeze_id = result["freeze_id"]
        if result["already"]:
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


def _measure_quietly(path: str) -> Record | None:
    try:
        return measure(path)
    except OSError:
        return None


_iso = iso_epoch
