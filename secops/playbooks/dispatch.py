"""From events to playbook runs: match triggers, count thresholds, open or join incidents,
run each playbook in its own thread. Used by the daemon (every event its detectors emit)
and by ``secops playbook test`` (one event, in the foreground).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secops.config.schema import Config
from secops.playbooks.engine import Context, Runner, StepRecord, holds
from secops.playbooks.incidents import Incident, IncidentStore
from secops.playbooks.model import Playbook

Log = Callable[[str, str], None]
NO_TRIGGER_SOURCES = frozenset({"playbook"})  # a playbook's own events never fire playbooks


def load_playbooks(cfg: Config) -> tuple[list[Playbook], list[str]]:
    from secops.playbooks.loader import load_dir

    return load_dir(Path(cfg.playbooks.dir), cfg.playbooks.max_step_seconds,
                    cfg.playbooks.max_retries)


def matches(pb: Playbook, event: dict[str, Any]) -> bool:
    if not pb.trigger.matches_kind(str(event.get("kind", ""))):
        return False
    return all(holds(c, event, pb.variables) for c in pb.trigger.where)


def run_playbook(cfg: Config, pb: Playbook, event: dict[str, Any], *, dry_run: bool,
                 log: Log, stop: threading.Event | None = None,
                 store: IncidentStore | None = None
                 ) -> tuple[Incident | None, bool, list[StepRecord]]:
    """One run as the daemon does it: (incident, new?, step records). A dry run opens no
    incident and touches nothing."""
    from secops.playbooks.actions import ACTIONS

    if dry_run:
        ctx = Context(cfg, pb, event, dry_run=True, log=log)
        return None, False, Runner(ctx, ACTIONS).run()
    own = store is None
    store = store or IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)
    try:
        incident, new = store.open_or_join(pb.id, event, pb.severity,
                                           pb.trigger.incident_per)
        if not new:
            log("INFO", f"{event.get('kind')} joins incident {incident.id} ({pb.id})")
            return incident, False, []
        log("WARNING", f"incident {incident.id} opened: {event.get('kind')} -> playbook "
                       f"{pb.id} v{pb.version}")
        _audit(cfg, "incident.opened", {"incident": incident.id, "playbook": pb.id,
                                        "version": pb.version, "playbook_sha256": pb.sha256,
                                        "event": event}, pb.id)
        ctx = Context(cfg, pb, event, incident=incident, store=store, log=log,
                      stop=stop or threading.Event())
        runner = Runner(ctx, ACTIONS)
        records = runner.run()
        # a run stopped by the daemon while an approval waits has not failed: it says so
        ended = {"ok": runner.ok(), "stopped": ctx.stop.is_set(), "waiting": runner.waiting()}
        store.note(incident.id, "playbook.finished", {"playbook": pb.id, **ended})
        _audit(cfg, "playbook.finished", {
            "incident": incident.id, "playbook": pb.id, **ended,
            "failed": [r.step for r in records if not (r.ok or r.waiting)]}, pb.id)
        return store.get(incident.id), True, records
    finally:
        if own:
            store.close()


def report_failure(cfg: Config, pb: Playbook, event: dict[str, Any], error: BaseException,
                   log: Log) -> None:
    """A run that failed is an alert: ``playbook.failed`` in the events table (``secops
    status``) and, through it, the audit log. Its source is ``playbook``, so it fires no
    playbook itself. When even the table cannot take it, the audit log still gets it."""
    import sqlite3
    from datetime import UTC, datetime

    from secops.clock import iso_utc
    from secops.daemon.state import StateDB

    details = {"playbook": pb.id, "version": pb.version, "error": f"{type(error).__name__}: "
               f"{error}", "event": {k: event.get(k) for k in ("kind", "time", "source")}}
    severity = "critical" if pb.severity == "critical" else "high"
    try:
        db = StateDB(Path(cfg.paths.state_dir) / "state.db", office=cfg.office.code)
        try:
            db.add_event(iso_utc(datetime.now(UTC)), "playbook.failed", "playbook", severity,
                         details)
        finally:
            db.close()
    except (sqlite3.Error, OSError) as e:
        log("ERROR", f"cannot record the failure of playbook {pb.id} as an alert: {e}")
        _audit(cfg, "playbook.failed", {"severity": severity, "details": details}, pb.id)


def _audit(cfg: Config, kind: str, data: dict[str, Any], playbook: str) -> None:
    from secops.audit import record_safely

    record_safely(cfg.paths.state_dir, cfg.office.code, kind, data, actor=f"playbook:{playbook}")


class Dispatcher:
    """The daemon's side: fire matching playbooks on every new event, in threads."""

    def __init__(self, cfg: Config, log: Log) -> None:
        self.cfg = cfg
        self.log = log
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.playbooks, problems = load_playbooks(cfg)
        self.problems = problems
        for p in problems:
            log("ERROR", f"playbook refused: {p}")
        for pb in self.playbooks:
            _audit(cfg, "playbook.loaded", {"playbook": pb.id, "version": pb.version,
                                            "file": pb.source, "sha256": pb.sha256}, pb.id)
        log("INFO", f"{len(self.playbooks)} playbook(s) loaded from {cfg.playbooks.dir}"
            + (f", {len(problems)} refused" if problems else ""))

    def handle(self, event: dict[str, Any]) -> list[str]:
        """Fire every matching playbook for ``event``; returns their ids."""
        if event.get("source") in NO_TRIGGER_SOURCES:
            return []
        fired = []
        store = IncidentStore(Path(self.cfg.paths.state_dir) / "state.db", self.cfg.office.code)
        try:
            for pb in self.playbooks:
                if not matches(pb, event):
                    continue
                th = pb.trigger.threshold
                if th is not None:
                    if store.hit(pb.id, th.within_minutes * 60) < th.count:
                        continue
                    store.reset_hits(pb.id)
                fired.append(pb.id)
                t = threading.Thread(target=self._run, args=(pb, event),
                                     name=f"playbook-{pb.id}", daemon=True)
                t.start()
                self.threads.append(t)
        finally:
            store.close()
        self.threads = [t for t in self.threads if t.is_alive()]
        return fired

    def _run(self, pb: Playbook, event: dict[str, Any]) -> None:
        try:
            run_playbook(self.cfg, pb, event, dry_run=False, log=self.log, stop=self.stop)
        except Exception as e:  # a playbook's failure never takes the daemon down
            self.log("ERROR", f"playbook {pb.id} failed: {e!r}")
            report_failure(self.cfg, pb, event, e, self.log)

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
