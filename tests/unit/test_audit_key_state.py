"""The audit log's writer against a failing disk and a key state put back (issue 15, items
3 and 4): a write that dies half-way leaves no torn line, an unsealed torn tail is not
tampering while a sealed record cut short is, a rolled-back key state is caught and written
into the log, and init never makes a new key for an existing log. Each with its twin."""

from __future__ import annotations

import errno
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from secops.audit import log as audit_log
from secops.audit import record
from secops.audit.log import AuditLog, ensure_keys, key_state_path
from secops.audit.verify import Report, check_key_state, verify
from secops.daemon.state import StateDB
from secops.errors import IntegrityError
from secops.keys.signature import load_public_key
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir


@pytest.fixture(autouse=True)
def distinct_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch its own second (they share one time; batches a second apart look like
    separate writes, as they are on a server)."""
    ticks = itertools.count()
    monkeypatch.setattr(audit_log, "iso_utc_now",
                        lambda: f"2026-05-22T02:{next(ticks) // 60 % 60:02d}:"
                                f"{next(ticks) % 60:02d}Z")


def office(root: Path, records: int = 5) -> Path:
    state = root / "state"
    sd = StateDir(state)
    ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
    ensure_keys(state)
    log = AuditLog(state, "tan-ky")
    log.checkpoint()
    for i in range(records):
        log.record("backup.completed", "daemon", {"n": i})
    return state


def live_verify(state: Path) -> Report:
    sd = StateDir(state)
    report = verify(sd.audit, public_key=load_public_key(sd.ed25519_pub), live=True)
    check_key_state(report, state)
    return report


def lines(state: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (StateDir(state).audit / "audit.jsonl").read_text()
            .splitlines()]


def test_a_write_that_dies_half_way_leaves_no_torn_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = office(tmp_path)
    path = StateDir(state).audit / "audit.jsonl"
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:  # a disk that fills mid-batch
        if len(data) > 40:
            real_write(fd, bytes(data[:len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        AuditLog(state, "tan-ky").record("backup.completed", "daemon", {"n": 99})
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before  # cut back: nothing half-written
    assert live_verify(state).ok
    AuditLog(state, "tan-ky").record("after", "daemon", {})  # and the log goes on
    assert lines(state)[-1]["kind"] == "after" and live_verify(state).ok


def test_an_unsealed_torn_tail_is_noted_a_sealed_record_cut_short_is_tampering(
        tmp_path: Path) -> None:
    state = office(tmp_path)
    path = StateDir(state).audit / "audit.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"seq":5,"time":"2026')  # died before the key moved on
    torn = live_verify(state)
    assert torn.ok and torn.partial_last_line == {"seq": 5, "bytes": 21}, torn.as_json()
    copy = verify(StateDir(state).audit)  # a copy has no key state to tell: strict
    assert not copy.ok and copy.problem == "malformed"
    # the twin: the last *sealed* record cut in half (the key had moved past it)
    path.write_bytes(whole[:-30])
    cut = live_verify(state)
    assert not cut.ok and cut.problem == "truncated", cut.as_json()


def test_a_key_state_put_back_is_caught_and_written_down(tmp_path: Path) -> None:
    state = office(tmp_path)
    key = key_state_path(state)
    old = key.read_bytes()
    for i in range(3):  # three batches, three different times
        AuditLog(state, "tan-ky").record("backup.completed", "daemon", {"n": 10 + i})
    assert live_verify(state).ok
    key.write_bytes(old)  # an older copy put back
    r = live_verify(state)
    assert not r.ok and r.problem == "rollback" and r.first_bad_seq == 5, r.as_json()
    heard: list[dict[str, Any]] = []
    record(state, "tan-ky", "after", {}, "daemon", on_tampered=heard.append)
    assert [h["problem"] for h in heard] == ["key_rolled_back"]
    assert heard[0]["key_was_at"] == 5 and heard[0]["log_ends_at"] == 7
    kinds = [x["kind"] for x in lines(state)]
    assert kinds[-2:] == ["audit.tampered", "after"]
    assert live_verify(state).ok  # caught up, the mark stays in the log


def test_the_crash_window_is_no_rollback(tmp_path: Path) -> None:
    """The twin: the key left one batch behind by a crash between the log's fsync and the
    key's write is caught up without a word."""
    state = office(tmp_path)
    key = key_state_path(state)
    old = key.read_bytes()
    AuditLog(state, "tan-ky").append([audit_log.Item("a", "daemon", {}),
                                      audit_log.Item("b", "daemon", {})])
    key.write_bytes(old)  # the key write "did not happen"
    assert live_verify(state).ok
    heard: list[dict[str, Any]] = []
    record(state, "tan-ky", "after", {}, "daemon", on_tampered=heard.append)
    assert heard == [] and lines(state)[-1]["kind"] == "after"
    assert live_verify(state).ok


def test_init_makes_no_new_key_for_an_existing_log(tmp_path: Path) -> None:
    state = office(tmp_path)
    key_state_path(state).unlink()
    with pytest.raises(IntegrityError, match="init does not make a new key"):
        ensure_keys(state)
    assert not key_state_path(state).exists()
    fresh = tmp_path / "fresh"  # the twin: a new office gets its keys
    assert ensure_keys(fresh) and key_state_path(fresh).exists()


@pytest.mark.parametrize("how", ["deleted", "garbage"])
def test_a_lost_key_state_leaves_a_gap_record_and_the_log_goes_on(how: str,
                                                                    tmp_path: Path) -> None:
    """A deleted or destroyed key state switched the audit log off (every record skipped,
    quietly), then failed each write. Now the log goes on under a new key behind a record
    that says so: alerted once, no record lost, and verify fails from the gap on, with or
    without the escrowed K_0. The twin: the key kept, no gap, verify ok."""
    state = office(tmp_path)
    k0 = bytes.fromhex(audit_log.initial_key_path(state).read_text().strip())
    db = StateDB(state / "state.db", office="tan-ky")
    try:
        db.audit("backup.completed", "daemon", {})
        assert [e["kind"] for e in db.recent_events()] == []  # the twin
        assert live_verify(state).ok
        before = len(lines(state))
        if how == "deleted":
            key_state_path(state).unlink()
        else:
            key_state_path(state).write_bytes(b"not a key state\n")
        db.audit("backup.completed", "daemon", {"n": "after"})
        db.audit("backup.completed", "daemon", {"n": "later"})
        events = db.recent_events()
        assert [e["kind"] for e in events] == ["audit.tampered"], events  # once
        assert events[0]["details"]["problem"] == "key_lost"
        assert events[0]["details"]["log_ends_at"] == before - 1
    finally:
        db.close()
    after = lines(state)
    assert [x["kind"] for x in after[before:]] == ["audit.tampered", "backup.completed",
                                                   "backup.completed"]
    assert after[before]["data"]["problem"] == "key_lost" and after[-1]["data"] == {"n": "later"}
    r = live_verify(state)
    assert not r.ok and (r.problem, r.first_bad_seq) == ("key_lost", before), r.as_json()
    sd = StateDir(state)
    escrow = verify(sd.audit, public_key=load_public_key(sd.ed25519_pub), initial_key=k0)
    assert not escrow.ok and escrow.first_bad_seq == before, escrow.as_json()
    assert escrow.problem == "key_lost"
    assert escrow.records == len(after)  # the chain itself runs on to the end


def test_a_log_that_cannot_be_sealed_is_an_alert_once(tmp_path: Path) -> None:
    state = office(tmp_path)
    db = StateDB(state / "state.db", office="tan-ky")
    try:
        db.audit("backup.completed", "daemon", {})
        assert [e["kind"] for e in db.recent_events()] == []  # the twin: sealed, no alert
        path = StateDir(state).audit / "audit.jsonl"
        path.write_bytes(path.read_bytes() + b"{not a record}\n")  # the head unreadable
        db.audit("backup.completed", "daemon", {})
        db.audit("backup.completed", "daemon", {})
        events = db.recent_events()
        assert [e["kind"] for e in events] == ["audit.disabled"], events  # once
        assert "unreadable" in events[0]["details"]["error"]
    finally:
        db.close()
