"""The daemon loop: finished jobs become alerts; a burst of changes is drained in one go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secops import process
from secops.config.loader import parse_config
from secops.daemon import service as service_mod
from secops.daemon.fallback import classify as fallback_classify
from secops.daemon.jobs import Done, Job
from secops.daemon.service import Service
from secops.watch.observer import Change


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "data").mkdir()
    raw = {"office": {"name": "X", "code": "x"},
           "paths": {"state_dir": "state", "watch": ["data"]},
           "backup": {"targets": [{"name": "local", "repository": "repo"}]}}
    cfg = parse_config(raw, tmp_path / "c.toml")
    logged: list[tuple[str, str]] = []
    s = Service(lambda: cfg, lambda level, msg: logged.append((level, msg)))
    yield s
    s.worker.stop(timeout=5)
    s.db.close()


def kinds(service: Service) -> list[str]:
    return [e["kind"] for e in service.db.recent_events()]


def test_failed_scheduled_check_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("check", lambda: None),
                         result={"local": "target 'local': check failed: pack damaged"}))
    assert kinds(service) == ["backup.check_failed"]
    assert service.db.recent_events()[0]["details"]["targets"]["local"].endswith("damaged")


def test_failed_drill_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("drill", lambda: None), result={"local": "FAILED"}))
    assert kinds(service) == ["drill.failed"]


def test_successful_scheduled_jobs_raise_nothing(service: Service) -> None:
    service._handle(Done(Job("check", lambda: None), result={"local": "ok"}))
    service._handle(Done(Job("drill", lambda: None), result={"local": "ok"}))
    service._handle(Done(Job("retention", lambda: None),
                         result=[{"target": "local", "ok": True, "error": None}]))
    assert kinds(service) == []


def test_failed_retention_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("retention", lambda: None),
                         result=[{"target": "local", "ok": False, "error": "locked"}]))
    assert kinds(service) == ["backup.retention_failed"]


# -- the loop takes a burst of changes in one go ---------------------------------------------

def feed(service: Service, paths: list[str], every_s: float) -> threading.Thread:
    def run() -> None:
        for p in paths:
            service.events.put(Change(p, "modified"))
            time.sleep(every_s)
    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_save_s_burst_of_changes_is_recorded_once_it_is_quiet(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program's save is a burst (lock file, temp file, rename, attributes): recorded in
    one go once quiet, not a state.db write in the middle of each of the save's own writes
    (bench/office_bench.py). Before: the first drain took the first change alone."""
    monkeypatch.setattr(service_mod, "GATHER_QUIET_S", 3.0)  # generous: a loaded machine
    monkeypatch.setattr(service_mod, "GATHER_MAX_S", 60.0)
    paths = [f"/d/f{i}.docx" for i in range(6)]
    writer = feed(service, paths, every_s=0.01)  # 10 ms apart: well within the quiet time
    service._drain(timeout=30)
    writer.join()
    assert service.db.pending_count() == len(paths)
    assert service.events.empty()


def test_a_burst_that_never_goes_quiet_is_recorded_within_the_longest_wait(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin: an endless stream (an attack, a copy of thousands of files) is recorded
    batch by batch, GATHER_MAX_S at most after each batch's first change."""
    monkeypatch.setattr(service_mod, "GATHER_QUIET_S", 30.0)  # never quiet enough
    monkeypatch.setattr(service_mod, "GATHER_MAX_S", 0.5)
    paths = [f"/d/g{i}.csv" for i in range(400)]  # 4 s of changes, 10 ms apart
    writer = feed(service, paths, every_s=0.01)
    service._drain(timeout=30)
    first = service.db.pending_count()
    writer.join()
    assert 0 < first < len(paths)
    while not service.events.empty():
        service._drain(timeout=0)
    assert service.db.pending_count() == len(paths)  # nothing lost between batches


def test_a_job_s_end_is_not_held_back(service: Service) -> None:
    """The end of a worker job wakes the loop at once: the drain returns with it, and a
    change that comes a second later is the next drain's."""
    service.events.put(Change("", "job"))
    writer = threading.Timer(1.0, lambda: service.events.put(Change("/d/late.odt",
                                                                      "modified")))
    writer.start()
    service._drain(timeout=30)
    assert service.db.pending_count() == 0
    writer.join()
    service._drain(timeout=30)
    assert service.db.pending_count() == 1


class Fed:
    """Stands in for the integrity monitor: what reached it, and when."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.got = threading.Event()

    def feed(self, kind: str, path: str, dest: str = "") -> None:
        self.seen.append(path)
        self.got.set()


def test_the_monitor_hears_of_each_change_before_the_burst_is_over(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the state.db record waits for the burst's end: ransomware detection from inotify
    (no fanotify) must not wait for an attacker's stream of changes to pause."""
    monkeypatch.setattr(service_mod, "GATHER_QUIET_S", 30.0)
    monkeypatch.setattr(service_mod, "GATHER_MAX_S", 60.0)
    fed = Fed()
    monkeypatch.setattr(service, "monitor", fed)
    service.events.put(Change("/d/a.docx", "modified"))
    drain = threading.Thread(target=service._drain, args=(30,))
    drain.start()
    assert fed.got.wait(60)
    assert drain.is_alive() and service.db.pending_count() == 0  # still gathering
    service.events.put(Change("", "job"))  # ends the gathering
    drain.join(120)
    assert fed.seen == ["/d/a.docx"] and service.db.pending_count() == 1


# -- a step of the wall clock ---------------------------------------------------------------

class Wall:
    """The wall clock, stepped by the test (``time.time`` in the daemon's modules)."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.real = time.time

    def __call__(self) -> float:
        return self.real() + self.offset


def stepped_back(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Wall:
    wall = Wall()
    monkeypatch.setattr(time, "time", wall)
    wall.offset = -seconds
    return wall


def test_a_change_after_the_clock_stepped_back_still_needs_its_backup(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup at 10:00, the clock set back to 09:00, a change: the change is newer than the
    backup and is backed up (before: 'synced at 10:00 >= changed at 09:00', no backup of
    any kind for the hour). The twin: with no change, nothing is due."""
    service.db.ensure_targets(["local"])
    started = service.db.stamp(time.time())
    service.db.target_ok("local", started, "2026-12-02T10:00:00Z", "abcd")
    assert service._needing_backup() == []  # the twin
    stepped_back(monkeypatch, 3600)
    service.events.put(Change("/d/danh-sach.csv", "modified"))
    service._drain(timeout=5)
    assert service._needing_backup() == ["local"]
    assert service.db.pending_count() == 1


def test_a_retry_set_before_the_clock_stepped_back_is_due(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing target's retry in 30 s, then the clock set back an hour: the retry is not
    an hour and 30 s away. The twin: a retry in 30 s with a steady clock waits."""
    now = time.time()
    assert service._retry_waits(now + 30, now)
    assert not service._retry_waits(now + 30, now - 3600)
    assert not service._retry_waits(now - 1, now)


def test_the_interval_schedules_follow_a_step_of_the_clock(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 60 minutes stays every 60 minutes across a backward step; a daily job keeps its
    wall-clock time (no second run the same day)."""
    from secops.daemon.plan import build_schedule

    service.scheduler = build_schedule(service.cfg, lambda kind: None)
    every = [j for j in service.scheduler.jobs if j.at_time is None]
    daily = [j for j in service.scheduler.jobs if j.at_time is not None]
    assert every and daily
    before = {id(j): j.next_run for j in service.scheduler.jobs}
    service._follow_clock()  # no step: nothing moves
    assert {id(j): j.next_run for j in service.scheduler.jobs} == before
    stepped_back(monkeypatch, 3600)
    service._follow_clock()
    for j in every:
        assert abs((before[id(j)] - j.next_run).total_seconds() - 3600) < 5
    for j in daily:
        assert j.next_run == before[id(j)]


class Mono:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_backup_silent_past_every_bound_withholds_the_watchdog_ping(
        service: Service) -> None:
    """A restic the guard failed to end (no progress far past stall_seconds) holds back the
    ping, so systemd restarts the daemon; the twins: a quiet manifest build before restic
    has spoken, and a backup within its bound, do not."""
    clock = Mono()
    service.clock.monotonic = clock.monotonic  # type: ignore[method-assign]
    service.running["local"] = time.time()
    service.progress["local"] = clock.now
    bound = service.cfg.backup.stall_seconds + process.INTERRUPT_GRACE_S + \
        service_mod.STUCK_MARGIN_S
    clock.now += bound + 1
    assert service._stuck_workers() == []  # restic has not spoken: the manifest's hash
    service.restic_seen.add("local")
    assert service._stuck_workers() == ["local"]
    assert service._heartbeat() is False
    service.progress["local"] = clock.now - 10  # moving again
    assert service._stuck_workers() == [] and service._heartbeat() is True


def test_a_state_failure_is_kept_outside_and_recorded_once_the_state_takes_writes(
        service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from secops.daemon import fallback

    monkeypatch.setattr(fallback, "RUN_DIR", tmp_path / "run")
    service.fallback = fallback.Fallback(service.cfg.paths.state_dir)
    told: list[str] = []
    monkeypatch.setattr(service, "_tell_directly", lambda kind, error: told.append(kind))
    rescans: list[str] = []
    monkeypatch.setattr(service, "_submit_rescan", rescans.append)
    clock = Mono()
    service.clock.monotonic = clock.monotonic  # type: ignore[method-assign]
    full = sqlite3.OperationalError("database or disk is full")
    service._state_failed(full, ("backup.failed", "medium", {"target": "local"}))
    service._state_failed(full)  # the same episode: said once
    doc = fallback.read(service.cfg.paths.state_dir)
    assert doc is not None
    assert [a["kind"] for a in doc["alerts"]] == ["state.disk_full", "backup.failed"]
    assert told == ["state.disk_full"]
    assert kinds(service) == []  # nothing reached state.db meanwhile
    service._state_recovered()  # too soon after the failure: kept
    assert fallback.read(service.cfg.paths.state_dir) is not None
    clock.now += service_mod.RECOVERED_AFTER_S + 1
    service._state_recovered()
    assert fallback.read(service.cfg.paths.state_dir) is None
    assert sorted(kinds(service)) == ["backup.failed", "state.disk_full"]
    assert all(e["details"]["kept_outside"] for e in service.db.recent_events())
    assert rescans == ["state recovered"]  # finds the changes whose record failed


@pytest.mark.parametrize("sound", [True, False])
def test_a_damaged_state_db_is_back_only_once_it_is_sound(
        sound: bool, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged database may still take a heartbeat into its WAL: that is no recovery.
    The kept alerts go back in only once quick_check finds it sound; the twin: sound."""
    import sqlite3

    from secops.daemon import fallback

    monkeypatch.setattr(fallback, "RUN_DIR", tmp_path / "run")
    service.fallback = fallback.Fallback(service.cfg.paths.state_dir)
    monkeypatch.setattr(service, "_tell_directly", lambda kind, error: None)
    monkeypatch.setattr(service, "_submit_rescan", lambda why: None)
    monkeypatch.setattr(service.db, "quick_check",
                        lambda: None if sound else "Page 3: btreeInitPage() returns error")
    clock = Mono()
    service.clock.monotonic = clock.monotonic  # type: ignore[method-assign]
    service._state_failed(sqlite3.DatabaseError("database disk image is malformed"))
    clock.now += service_mod.RECOVERED_AFTER_S + 1
    service._state_recovered()
    kept = fallback.read(service.cfg.paths.state_dir)
    assert (kept is None) is sound
    assert kinds(service) == (["state.corrupt"] if sound else [])
    if not sound:  # the check failed anew: the next try waits again
        assert service.state_failed_at == clock.now


def test_the_running_daemon_checks_state_db_each_hour(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    checks: list[int] = []

    def damaged() -> str:
        checks.append(1)
        return "row 7 missing from index"

    monkeypatch.setattr(service.db, "quick_check", damaged)
    clock = Mono()
    service.clock.monotonic = clock.monotonic  # type: ignore[method-assign]
    service.state_checked = clock.now
    service._check_state_disk()
    assert checks == []
    clock.now += service_mod.STATE_CHECK_EVERY_S
    with pytest.raises(sqlite3.DatabaseError) as e:
        service._check_state_disk()
    assert fallback_classify(e.value) == "state.corrupt" and checks == [1]
    service._check_state_disk()  # not again before the next hour
    assert checks == [1]


@pytest.mark.parametrize("stalled", [True, False])
def test_a_stalled_backup_s_lock_goes_at_the_next_backup_not_at_once(
        stalled: bool, service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlocking right after a stall waited on the server that had just hung (120 s more
    in the hung-target fault test); now the next backup of that target unlocks first. The
    twin: an ordinary failure leaves the target as it was."""
    from secops import childjob
    from secops.backup.models import TargetResult

    calls: list[bool] = []

    def fake_child(kind: str, _cfg: object, name: str, _reason: str, unlock_first: bool,
                   **_: object) -> list[TargetResult]:
        assert (kind, name) == ("backup", "local")  # the backup's own child process
        calls.append(unlock_first)
        return []

    monkeypatch.setattr(childjob, "run", fake_child)
    service._backup_work("local", "change")()  # the first since start: unlocks
    service._backup_work("local", "change")()
    assert calls == [True, False]
    result = TargetResult("local", ok=False, error="no progress", stalled=stalled)
    service._handle(Done(Job("backup", lambda: None, {"targets": ["local"],
                                                      "started": 1.0}), result=[result]))
    service._backup_work("local", "change")()
    assert calls[-1] is stalled
