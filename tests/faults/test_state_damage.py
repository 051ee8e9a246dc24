"""A damaged state.db: every command says so in one clear line and exits 3, never a
traceback; the daemon refuses to run on it at start (issue 15, item 3). The twin: the same
office with its state.db intact works."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from integration.daemon import Daemon, wait_for
from integration.office import Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Office:
    root = tmp_path_factory.mktemp("state-damage")
    o = Office(root, [target_toml("local", str(root / "repo"))]).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    return o


def damage(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    assert len(data) >= 3 * 4096 and not db.with_name("state.db-wal").exists()
    if how == "garbage":
        data[:] = os.urandom(len(data))
    elif how == "truncated":
        del data[len(data) // 2:]
    else:  # 64 bytes flipped in the b-tree header of page 2
        data[4096:4160] = bytes(b ^ 0xFF for b in data[4096:4160])
    db.write_bytes(bytes(data))


COMMANDS = [("status",), ("audit", "verify"), ("backup", "now"), ("snapshots",)]


@pytest.mark.parametrize("how", ["intact", "garbage", "truncated", "flipped"])
def test_a_damaged_state_db_is_refused_in_one_clear_line(how: str, office: Office) -> None:
    db = office.state / "state.db"
    saved = db.read_bytes()
    try:
        if how != "intact":
            damage(db, how)
        codes = []
        for args in COMMANDS:
            done = office.run(*args)  # Office.run fails on any traceback
            codes.append(done.code)
            if how == "intact":
                assert done.code == 0, (args, done.err)
            elif done.code != 0:
                assert done.code == 3 and "damaged" in done.err, (args, done.err)
        if how == "intact":
            return  # the daemon runs on it (the daemon tests)
        assert 3 in codes  # what reads the damage says so
        daemon = office.run("run", timeout=60)
        assert daemon.code == 3, daemon.err
        assert "damaged" in daemon.err and "state.db" in daemon.err, daemon.err
    finally:
        db.write_bytes(saved)
        for side in ("state.db-wal", "state.db-shm"):
            (office.state / side).unlink(missing_ok=True)


@pytest.mark.parametrize("key", ["kept", "deleted"])
def test_a_deleted_audit_key_leaves_a_gap_record_never_a_skip(key: str,
                                                               office: Office) -> None:
    """Deleting ``keys/audit-mac.state`` switched the audit log off: every record skipped,
    quietly (issue 15, item 4). Now the log goes on under a new key behind a record saying
    so, the command says it, and verify fails from the gap on. The twin: the key kept."""
    state = office.state / "keys" / "audit-mac.state"
    audit = office.state / "audit"
    saved = state.read_bytes()
    saved_log = {p.name: p.read_bytes() for p in audit.iterdir() if p.is_file()}
    log = audit / "audit.jsonl"
    lines = log.read_bytes().count(b"\n")
    try:
        if key == "deleted":
            state.unlink()
        done = office.run("backup", "now")
        assert done.code == 0, done.err  # the backup itself goes on
        said = "key_lost" in done.err
        records = [json.loads(x) for x in log.read_bytes().splitlines()[lines:]]
        verify = office.run("audit", "verify", "--json")
        if key == "kept":
            assert not said and records and verify.code == 0, (done.err, verify.out)
            assert "audit.tampered" not in [r["kind"] for r in records]
        else:
            assert said and verify.code == 1, (done.err, verify.out)
            assert records[0]["kind"] == "audit.tampered", records[0]
            assert records[0]["data"]["problem"] == "key_lost"
            assert "backup.completed" in [r["kind"] for r in records[1:]]  # nothing skipped
            doc = verify.json()
            assert (doc["problem"], doc["first_bad_seq"]) == ("key_lost", records[0]["seq"])
    finally:
        state.write_bytes(saved)
        state.chmod(0o600)
        for p in audit.iterdir():
            if p.is_file() and p.name not in saved_log:
                p.unlink()
        for name, data in saved_log.items():
            (audit / name).write_bytes(data)


@pytest.mark.parametrize("how", ["kept", "deleted", "emptied"])
def test_a_lost_state_db_is_said_at_start(how: str, tmp_path: Path) -> None:
    """A deleted or emptied state.db started the daemon afresh, silently: its history
    (targets, incidents, the baseline) gone. Now it is `state.lost`, audited and alerted;
    the twin (kept) raises nothing."""
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert office.run("init").code == 0
    db = office.state / "state.db"
    assert db.exists()  # from init on
    if how == "deleted":
        db.unlink()
    elif how == "emptied":
        db.write_bytes(b"")
    d = Daemon(office).start()
    try:
        wait_for(lambda: "secops daemon ready" in d.log(), 60, "the daemon")
        alerts = [a["kind"] for a in office.run("status", "--json").json()["alerts"]]
        assert ("state.lost" in alerts) is (how != "kept"), alerts
    finally:
        d.stop()
