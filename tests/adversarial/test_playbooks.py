"""Two playbooks on one event, and a playbook run that fails (issue 12, item 6).

A change to a voter list matches both ``protected-file-changed`` and ``personal-data-breach``:
the real Dispatcher runs both at once, in two threads with two database connections. Each
must open its own incident (the 72-hour breach notice must never be the one lost), and a run
that fails anyway must be an alert (``playbook.failed``, in ``secops status`` and the audit
log) that itself never fires a playbook.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from minimal_config import MINIMAL_TOML

from secops.audit.log import audit_paths, ensure_keys
from secops.config.loader import load_config
from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.playbooks.dispatch import NO_TRIGGER_SOURCES, Dispatcher
from secops.playbooks.incidents import IncidentStore

REPO = Path(__file__).resolve().parents[2]
BOTH = ["personal-data-breach", "protected-file-changed"]
REPETITIONS = 40


def shipped_trigger_playbook(pid: str, folder: Path) -> None:
    """The shipped playbook's id, severity and trigger, with one step (the race is in
    opening the incident, before any step runs)."""
    doc = yaml.safe_load((REPO / "playbooks" / f"{pid}.yaml").read_text(encoding="utf-8"))
    doc["steps"] = [{"id": "done", "type": "end"}]
    (folder / f"{pid}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True),
                                        encoding="utf-8")


def office(tmp_path: Path, extra: str = "") -> Config:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "pb").mkdir(exist_ok=True)
    config = tmp_path / "secops.toml"
    config.write_text(MINIMAL_TOML + f'[playbooks]\ndir = "pb"\n{extra}', encoding="utf-8")
    cfg = load_config(config)
    ensure_keys(Path(cfg.paths.state_dir))  # the audit log exists, as after `secops init`
    return cfg


def voter_list_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (REPO / "playbooks" / "events" / "protected-file-changed.json").read_text())
    return event


def audit_kinds(cfg: Config) -> list[str]:
    log, _, _ = audit_paths(Path(cfg.paths.state_dir))
    return [json.loads(line)["kind"] for line in log.read_text().splitlines() if line]


def events(cfg: Config) -> list[dict[str, Any]]:
    db = StateDB(Path(cfg.paths.state_dir) / "state.db")
    try:
        return [e for _, e in db.events_after(0, limit=10_000)]
    finally:
        db.close()


def settle(d: Dispatcher) -> None:
    for t in list(d.threads):
        t.join(30)
        assert not t.is_alive()


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, level: str, message: str) -> None:
        with self._lock:
            self.lines.append((level, message))

    def errors(self) -> list[str]:
        return [m for level, m in self.lines if level == "ERROR"]


# -- item 6: the race -------------------------------------------------------------------------

def test_two_playbooks_on_one_event_each_open_their_own_incident(tmp_path: Path) -> None:
    cfg = office(tmp_path)
    for pid in BOTH:
        shipped_trigger_playbook(pid, Path(cfg.playbooks.dir))
    log = Log()
    d = Dispatcher(cfg, log)
    assert sorted(p.id for p in d.playbooks) == BOTH, d.problems
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)
    try:
        for rep in range(REPETITIONS):
            assert sorted(d.handle(voter_list_event())) == BOTH
            settle(d)
            opened = [i for i in store.all() if i.state != "closed"]
            assert sorted(i.playbook for i in opened) == BOTH, (rep, log.errors())
            for i in opened:  # the next repetition opens new incidents (none to join)
                store.advance(i.id, "closed", "test")
        ids = [i.id for i in store.all()]
    finally:
        store.close()
        d.close()
    assert len(ids) == len(set(ids)) == 2 * REPETITIONS
    assert log.errors() == []
    assert "playbook.failed" not in [e["kind"] for e in events(cfg)]
    assert audit_kinds(cfg).count("incident.opened") == 2 * REPETITIONS


def test_incident_numbers_continue_after_the_highest_not_the_count(tmp_path: Path) -> None:
    """A gap in the numbers (an incident removed by hand, a number taken by another
    office's import) never makes the next incident reuse a taken number."""
    cfg = office(tmp_path)
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)
    try:
        first, _ = store.open_or_join("a", voter_list_event(), "high")
        prefix = first.id.rsplit("-", 1)[0]
        with store._db:  # a gap: 001 and 005 exist, nothing between
            store._db.execute("UPDATE incidents SET id = ? WHERE id = ?",
                              (f"{prefix}-005", first.id))
            store._db.execute("INSERT INTO incidents (id, playbook, kind, severity, state, "
                              "opened, updated, event) VALUES (?, 'b', 'k', 'high', "
                              "'closed', 0, 0, '{}')", (f"{prefix}-001",))
        nxt, new = store.open_or_join("c", voter_list_event(), "high")
    finally:
        store.close()
    assert new and nxt.id == f"{prefix}-006"


def test_a_second_attacker_is_its_own_incident_where_the_playbook_says_so(
        tmp_path: Path) -> None:
    """Guessing from a second address while the first address's incident is open: with
    ``incident_per: [details.source]`` (auth-bruteforce) it opens its own incident, so its
    block runs; the same address again joins. The twin, a playbook without it: every event
    joins (a repeating alert is one incident)."""
    cfg = office(tmp_path)
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)

    def guess(source: str, playbook: str, per: tuple[str, ...]) -> tuple[str, bool]:
        event = {"kind": "auth.bruteforce", "time": "2026-12-03T02:00:00Z", "source": "daemon",
                 "severity": "high", "details": {"source": source, "failures": 5}}
        incident, new = store.open_or_join(playbook, event, "high", per)
        return incident.id, new

    try:
        a, new_a = guess("203.0.113.7", "auth-bruteforce", ("details.source",))
        b, new_b = guess("198.51.100.9", "auth-bruteforce", ("details.source",))
        a2, new_a2 = guess("203.0.113.7", "auth-bruteforce", ("details.source",))
        c, new_c = guess("203.0.113.7", "other", ())
        d, new_d = guess("198.51.100.9", "other", ())
    finally:
        store.close()
    assert new_a and new_b and a != b
    assert (a2, new_a2) == (a, False)
    assert new_c and (d, new_d) == (c, False)


# -- item 6: a failed run is an alert, never a trigger ----------------------------------------

def refuse_new_incidents(cfg: Config) -> None:
    """A real SQLite failure on opening an incident (what a full disk or a damaged table
    gives), made on demand with a trigger."""
    IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code).close()
    db = sqlite3.connect(Path(cfg.paths.state_dir) / "state.db")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON incidents "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    db.commit()
    db.close()


def test_a_failed_playbook_run_is_an_alert_and_an_audit_record(tmp_path: Path) -> None:
    cfg = office(tmp_path)
    shipped_trigger_playbook("personal-data-breach", Path(cfg.playbooks.dir))
    refuse_new_incidents(cfg)
    log = Log()
    d = Dispatcher(cfg, log)
    try:
        assert d.handle(voter_list_event()) == ["personal-data-breach"]
        settle(d)
    finally:
        d.close()
    failed = [e for e in events(cfg) if e["kind"] == "playbook.failed"]
    assert len(failed) == 1, log.lines
    alert = failed[0]
    assert alert["source"] in NO_TRIGGER_SOURCES
    assert alert["severity"] == "critical"  # the playbook's own severity: the 72-hour notice
    assert alert["details"]["playbook"] == "personal-data-breach"
    assert alert["details"]["event"]["kind"] == "integrity.unauthorized_change"
    assert "database or disk is full" in alert["details"]["error"]
    assert "playbook.failed" in audit_kinds(cfg)
    assert any("personal-data-breach" in m for m in log.errors())


def test_a_run_that_succeeds_raises_no_failure_alert(tmp_path: Path) -> None:
    cfg = office(tmp_path)
    shipped_trigger_playbook("personal-data-breach", Path(cfg.playbooks.dir))
    d = Dispatcher(cfg, Log())
    try:
        assert d.handle(voter_list_event()) == ["personal-data-breach"]
        settle(d)
    finally:
        d.close()
    assert [e["kind"] for e in events(cfg)] == []
    assert "playbook.finished" in audit_kinds(cfg)


@pytest.mark.parametrize("source,fires", [("playbook", False), ("integrity", True)])
def test_a_playbooks_own_failure_alert_never_fires_a_playbook(tmp_path: Path, source: str,
                                                              fires: bool) -> None:
    """A catch-all playbook: the stored ``playbook.failed`` alert (as the daemon reads it back
    from the events table) fires nothing; the same kind from a detector would."""
    cfg = office(tmp_path)
    shipped_trigger_playbook("personal-data-breach", Path(cfg.playbooks.dir))
    (Path(cfg.playbooks.dir) / "all.yaml").write_text(
        "id: all\nversion: 1\nname: all\nseverity: low\ntrigger: {event: '*'}\n"
        "steps:\n  - {id: done, type: end}\n", encoding="utf-8")
    refuse_new_incidents(cfg)
    d = Dispatcher(cfg, Log())
    try:
        d.handle(voter_list_event())
        settle(d)
        stored = [e for e in events(cfg) if e["kind"] == "playbook.failed"]
        assert stored and all(e["source"] == "playbook" for e in stored)
        alert = {**stored[0], "source": source}
        assert d.handle(alert) == (["all"] if fires else [])
        settle(d)
    finally:
        d.close()
