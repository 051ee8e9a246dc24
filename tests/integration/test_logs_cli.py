"""``secops logs seal|verify`` through the real command line: exit codes, the audit log's
``logs.sealed``/``logs.verified`` records and the ``logs.tampered`` alert in ``status``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from integration.office import Office, Result, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

def line(i: int) -> bytes:
    return (f"Mar 15 07:{i // 60 % 60:02d}:{i % 60:02d} tanky sshd[{1000 + i}]: Accepted "
            f"publickey for can-bo from 10.0.0.{i % 250} port {40000 + i} ssh2\n").encode()


def lines(start: int, n: int) -> bytes:
    return b"".join(line(i) for i in range(start, start + n))


def secops(office: Office, *args: str) -> Result:
    return office.run(*args)


def audit_records(office: Office, kind: str) -> list[dict[str, Any]]:
    path = office.state / "audit" / "audit.jsonl"
    records = [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == kind]


def tampered_alerts(office: Office) -> list[dict[str, Any]]:
    status = office.run("status", "--json")
    assert status.code == 0, status.err
    return [a for a in status.json()["alerts"] if a["kind"] == "logs.tampered"]


def make_office(root: Path, names: list[str]) -> Office:
    logs = root / "var-log"
    logs.mkdir(parents=True)
    for name in names:
        (logs / name).write_bytes(lines(0, 100))
    seal = ", ".join(f'"var-log/{n}"' for n in names)
    office = Office(root, [target_toml("local", str(root / "repo"))],
                    tail=f'\n[logs]\nseal = [{seal}]\njournald = "off"\n').write()
    init = office.run("init")
    assert init.code == 0, init.err
    return office


def test_append_and_logrotate_pass_and_are_recorded(tmp_path: Path) -> None:
    office = make_office(tmp_path / "office", ["auth.log", "syslog"])
    auth, syslog = office.root / "var-log" / "auth.log", office.root / "var-log" / "syslog"

    sealed = secops(office, "logs", "seal", "--json")
    assert sealed.code == 0, sealed.err
    doc = sealed.json()
    assert doc["audit_recorded"] is True and not doc["missing"]
    assert [f["path"] for f in doc["files"]] == [str(auth), str(syslog)]
    records = audit_records(office, "logs.sealed")
    assert len(records) == 1
    assert {f["path"]: f["sha256"] for f in records[0]["data"]["files"]} == {
        f["path"]: f["sha256"] for f in doc["files"]}

    with auth.open("ab") as f:                           # a normal append
        f.write(lines(100, 3))
    rotated = syslog.with_name("syslog.1.gz")            # logrotate with compression
    rotated.write_bytes(gzip.compress(syslog.read_bytes()))
    syslog.unlink()
    syslog.write_bytes(line(200))

    checked = secops(office, "logs", "verify", "--json")
    assert checked.code == 0, checked.out + checked.err
    result = checked.json()
    assert result["ok"] is True
    assert [(f["status"], f["rotated_to"]) for f in result["files"]] == [
        ("ok", None), ("rotated", str(rotated))]
    assert audit_records(office, "logs.verified")[-1]["data"]["ok"] is True
    assert tampered_alerts(office) == []
    human = secops(office, "logs", "verify")
    assert human.code == 0 and "no tampering found" in human.out


def test_edit_truncation_and_deletion_exit_1_and_raise_logs_tampered(tmp_path: Path) -> None:
    names = ["auth.log", "syslog", "kern.log", "daemon.log"]
    office = make_office(tmp_path / "office", names)
    auth, syslog, kern, daemon = (office.root / "var-log" / n for n in names)
    assert secops(office, "logs", "seal").code == 0

    data = auth.read_bytes()                             # an edited line, same inode
    with auth.open("r+b") as f:
        f.write(data.replace(b"10.0.0.77 ", b"10.0.0.12 "))
    with syslog.open("r+b") as f:                        # truncation
        f.truncate(1000)
    kern.unlink()                                        # deletion
    with daemon.open("ab") as out:                       # the untouched twin: appended
        out.write(line(100))

    checked = secops(office, "logs", "verify", "--json")
    assert checked.code == 1, checked.err
    result = checked.json()
    assert result["ok"] is False
    assert {f["path"]: f["status"] for f in result["files"]} == {
        str(auth): "edited", str(syslog): "truncated", str(kern): "deleted",
        str(daemon): "ok"}
    alerts = tampered_alerts(office)
    assert len(alerts) == 1
    assert sorted(alerts[0]["paths"]) == sorted([str(auth), str(syslog), str(kern)])
    verified = audit_records(office, "logs.verified")[-1]["data"]
    assert verified["ok"] is False and len(verified["problems"]) == 3

    human = secops(office, "logs", "verify")
    assert human.code == 1 and "3 problem(s)" in human.out

    assert secops(office, "logs", "seal").code == 0        # acknowledged: a new seal
    again = secops(office, "logs", "verify", "--json")
    assert again.code == 0, again.out
    assert [f["status"] for f in again.json()["files"]] == ["ok", "ok", "missing", "ok"]


def test_without_logs_configured_says_so_and_exits_0(tmp_path: Path) -> None:
    office = Office(tmp_path / "office", [target_toml("local", str(tmp_path / "repo"))],
                    tail='\n[logs]\njournald = "off"\n').write()
    sealed = secops(office, "logs", "seal")
    assert sealed.code == 0 and "no log files to seal" in sealed.out
    checked = secops(office, "logs", "verify", "--json")
    assert checked.code == 0 and checked.json()["files"] == []


def test_bad_logs_config_is_exit_2_without_traceback(tmp_path: Path) -> None:
    office = Office(tmp_path / "office", [target_toml("local", str(tmp_path / "repo"))],
                    tail='\n[logs]\nseal = [""]\n').write()
    result = secops(office, "logs", "verify")
    assert result.code == 2 and "logs.seal" in result.err
