# ruff: noqa: E501  (real log lines, kept whole)
"""The login watch's pure parts (issue 16, detections): lines as sshd, smbd, useradd and
usermod write them, through both carriers, judged into findings. Every "must detect" has its
twin that must not."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from secops.intrusion import authlog, follow
from secops.intrusion.authlog import AuthEvent
from secops.intrusion.rules import Policy, Rules

ICT = timezone(timedelta(hours=7))
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=ICT).timestamp()  # a Thursday, 09:00 local

# Real lines (Debian 12: rsyslog's default RFC 3339 format, OpenSSH 9.2 with PAM)
ATTACK = """\
2026-12-03T09:00:01.144059+07:00 vm sshd[1060]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.9  user=root
2026-12-03T09:00:03.352600+07:00 vm sshd[1060]: Failed password for root from 10.0.0.9 port 34974 ssh2
2026-12-03T09:00:05.189257+07:00 vm sshd[1092]: Invalid user nosuchuser from 10.0.0.9 port 34976
2026-12-03T09:00:05.192505+07:00 vm sshd[1092]: pam_unix(sshd:auth): check pass; user unknown
2026-12-03T09:00:05.214866+07:00 vm sshd[1060]: Connection closed by authenticating user root 10.0.0.9 port 34974 [preauth]
2026-12-03T09:00:07.280754+07:00 vm sshd[1092]: Failed password for invalid user nosuchuser from 10.0.0.9 port 34976 ssh2
2026-12-03T09:00:07.431041+07:00 vm sshd[1092]: Connection closed by invalid user nosuchuser 10.0.0.9 port 34976 [preauth]
2026-12-03T09:00:08.000001+07:00 vm sshd[1100]: Invalid user admin from 10.0.0.9 port 34980
2026-12-03T09:00:08.100001+07:00 vm sshd[1100]: Connection closed by invalid user admin 10.0.0.9 port 34980 [preauth]
"""


def events(text: str, now: float = T0) -> list[AuthEvent]:
    out = []
    for raw in text.splitlines():
        line = authlog.parse_syslog(raw, year=2026, tz=ICT)
        ev = authlog.auth_event(line, now) if line is not None else None
        if ev is not None:
            out.append(ev)
    return out


def policy(**kw: object) -> Policy:
    base = {"max_failures": 5, "find_seconds": 600.0, "tz": ICT}
    return Policy(**{**base, **kw})  # type: ignore[arg-type]


def test_each_attempt_counts_once() -> None:
    evs = events(ATTACK)
    assert [(e.kind, e.user, e.source, e.port) for e in evs] == [
        ("failure", "root", "10.0.0.9", 34974),
        ("invalid_user", "nosuchuser", "10.0.0.9", 34976),
        ("probe_closed", "root", "10.0.0.9", 34974),
        ("failure", "nosuchuser", "10.0.0.9", 34976),
        ("probe_closed", "nosuchuser", "10.0.0.9", 34976),
        ("invalid_user", "admin", "10.0.0.9", 34980),
        ("probe_closed", "admin", "10.0.0.9", 34980)]
    rules = Rules(policy(max_failures=3))
    found = [f for e in evs for f in rules.feed(e)]
    # two passwords and one probe that never sent one: three attempts, not seven lines
    assert [f.kind for f in found] == ["auth.bruteforce"]
    d = found[0].details
    assert (d["source"], d["failures"], d["users"]) == ("10.0.0.9", 3,
                                                        ["admin", "nosuchuser", "root"])
    twin = Rules(policy(max_failures=4))  # one attempt short
    assert [f for e in evs for f in twin.feed(e)] == []


def test_both_syslog_time_formats_and_the_journal_give_the_same_event() -> None:
    rfc = authlog.parse_syslog("2026-12-03T09:00:03.352600+07:00 vm sshd[1060]: Failed "
                               "password for root from 10.0.0.9 port 34974 ssh2",
                               year=2026, tz=ICT)
    old = authlog.parse_syslog("Dec  3 09:00:03 vm sshd[1060]: Failed password for root "
                               "from 10.0.0.9 port 34974 ssh2", year=2026, tz=ICT)
    journal = authlog.parse_journal({
        "MESSAGE": "Failed password for root from 10.0.0.9 port 34974 ssh2",
        "SYSLOG_IDENTIFIER": "sshd", "_PID": "1060",
        "__REALTIME_TIMESTAMP": str(int(T0 * 1e6) + 3_352_600), "__CURSOR": "s=1"})
    assert rfc is not None and old is not None and journal is not None
    assert abs((rfc.time or 0) - (T0 + 3.3526)) < 1e-3 and old.time == T0 + 3
    assert abs((journal.time or 0) - (rfc.time or 0)) < 1e-3
    for line in (rfc, old, journal):
        ev = authlog.auth_event(line, 0.0)
        assert ev is not None and (ev.kind, ev.user, ev.source) == ("failure", "root",
                                                                   "10.0.0.9")


@pytest.mark.parametrize("bad", [
    "", "garbage", "2026-13-45T99:99:99+07:00 vm sshd[1]: Failed password for x from 1.2.3.4 "
    "port 1 ssh2", "Dec 99 09:00:03 vm sshd[1]: hi", "\x00" * 10000,
    "2026-12-03T09:00:03+07:00 vm sshd[1]: Failed password for root from not-an-ip port 1 ssh2",
])
def test_hostile_lines_are_nothing(bad: str) -> None:
    line = authlog.parse_syslog(bad, year=2026, tz=ICT)
    ev = authlog.auth_event(line, T0) if line is not None else None
    assert ev is None or ev.source is None
    if ev is not None:
        assert Rules(policy(max_failures=1)).feed(ev) == []  # no source, nothing to block


@pytest.mark.parametrize("entry", [None, [], {"MESSAGE": 3}, {"MESSAGE": "x"},
                                   {"MESSAGE": [300, "a"], "SYSLOG_IDENTIFIER": "sshd"},
                                   {"MESSAGE": "x", "SYSLOG_IDENTIFIER": "sshd",
                                    "__REALTIME_TIMESTAMP": "soon", "_PID": {}}])
def test_odd_journal_entries_are_refused_or_harmless(entry: object) -> None:
    line = authlog.parse_journal(entry)
    assert line is None or authlog.auth_event(line, T0) is None


def test_a_guess_that_worked_and_an_honest_login() -> None:
    rules = Rules(policy())
    attack = "2026-12-03T09:0{i}:00+07:00 vm sshd[{i}]: Failed password for root from " \
        "203.0.113.5 port 4{i}000 ssh2"
    found = [f for i in range(3) for e in events(attack.format(i=i)) for f in rules.feed(e)]
    assert found == []  # three failures: below the block threshold
    ok = "2026-12-03T09:04:00+07:00 vm sshd[9]: Accepted password for root from " \
        "203.0.113.5 port 49000 ssh2"
    [f] = [f for e in events(ok) for f in rules.feed(e)]
    assert f.kind == "auth.login_after_failures" and f.severity == "critical"
    assert (f.details["user"], f.details["failures"]) == ("root", 3)
    # the twin: the clerk's own login from another address, in office hours
    clerk = "2026-12-03T09:05:00+07:00 vm sshd[10]: Accepted publickey for canbo from " \
        "192.168.1.20 port 50000 ssh2: ED25519 SHA256:abc"
    assert [f for e in events(clerk) for f in rules.feed(e)] == []


def test_failures_outside_the_window_do_not_add_up() -> None:
    rules = Rules(policy(max_failures=3, find_seconds=600.0))
    line = "2026-12-03T{t}+07:00 vm sshd[1]: Failed password for root from 198.51.100.7 " \
        "port {p} ssh2"
    slow = [line.format(t=t, p=p) for t, p in (("09:00:00", 1), ("09:11:00", 2),
                                                ("09:22:00", 3))]
    assert [f for s in slow for e in events(s) for f in rules.feed(e)] == []
    fast = [line.format(t=f"09:30:0{i}", p=10 + i) for i in range(3)]
    assert [f.kind for s in fast for e in events(s) for f in rules.feed(e)] == \
        ["auth.bruteforce"]
    more = [line.format(t=f"09:31:0{i}", p=20 + i) for i in range(5)]
    assert [f for s in more for e in events(s) for f in rules.feed(e)] == []  # told once


def test_logins_outside_office_hours() -> None:
    rules = Rules(policy(office_start_min=7 * 60, office_end_min=17 * 60 + 30,
                         office_days=frozenset(range(6))))
    night = "2026-12-03T23:10:00+07:00 vm sshd[1]: Accepted password for canbo from " \
        "192.168.1.20 port 50000 ssh2"
    sunday = "2026-12-06T10:00:00+07:00 vm sshd[2]: Accepted password for canbo from " \
        "192.168.1.20 port 50001 ssh2"
    day = "2026-12-03T10:00:00+07:00 vm sshd[3]: Accepted password for canbo from " \
        "192.168.1.20 port 50002 ssh2"
    found = [f for s in (night, night, sunday, day) for e in events(s) for f in rules.feed(e)]
    assert [(f.kind, f.details["local_time"][:16]) for f in found] == [
        ("auth.login_off_hours", "2026-12-03T23:10"), ("auth.login_off_hours",
                                                       "2026-12-06T10:00")]


SMB_FAIL = ('{"timestamp": "2026-12-03T09:00:00.588558+0700", "type": "Authentication", '
            '"Authentication": {"version": {"major": 1, "minor": 2}, "eventId": 4625, '
            '"status": "NT_STATUS_WRONG_PASSWORD", "localAddress": "ipv4:192.168.1.2:445", '
            '"remoteAddress": "ipv4:192.168.1.33:50123", "serviceDescription": "SMB2", '
            '"clientDomain": "WORKGROUP", "clientAccount": "canbo", "workstation": "PC-01", '
            '"passwordType": "NTLMv2"}}')


def test_samba_json_audit_lines() -> None:
    line = authlog.samba_line(SMB_FAIL)
    assert line is not None
    ev = authlog.auth_event(line, 0.0)
    assert ev is not None and (ev.service, ev.kind, ev.user, ev.source, ev.method) == (
        "smb", "failure", "WORKGROUP\\canbo", "192.168.1.33", "NTLMv2")
    assert ev.time == T0 + 0.588558
    ok = authlog.samba_line(SMB_FAIL.replace("NT_STATUS_WRONG_PASSWORD", "NT_STATUS_OK"))
    assert ok is not None and (authlog.auth_event(ok, T0) or ev).kind == "success"
    # the human-readable line beside it is not read (it would count each attempt twice)
    human = ("Auth: [SMB2,(null)] user [WORKGROUP]\\[canbo] at [Thu, 03 Dec 2026] with "
             "[NTLMv2] status [NT_STATUS_WRONG_PASSWORD] workstation [PC] remote host "
             "[ipv4:192.168.1.33:50123] mapped to [WORKGROUP]\\[canbo].")
    assert authlog.samba_line(human) is None
    for bad in ('{"timestamp": 1}', '{"type": "Authentication", "Authentication": []}',
                SMB_FAIL.replace("ipv4:192.168.1.33:50123", "somewhere"), "{not json"):
        line = authlog.samba_line(bad)
        assert line is None or authlog.auth_event(line, T0) is None


@pytest.mark.parametrize("text", [
    "Failed password for invalid user x from 192.168.1.5 port 22 ssh2 from 203.0.113.9 port "
    "4000 ssh2",
    "Failed password for invalid user x from 192.168.1.5 port 22 from 203.0.113.9 port 4000",
    "Invalid user x from 192.168.1.5 port 22 from 203.0.113.9 port 4000",
    "Connection closed by invalid user x 192.168.1.5 port 22 203.0.113.9 port 4000 [preauth]",
])
def test_a_user_name_cannot_frame_another_address(text: str) -> None:
    """sshd writes the client's chosen user name as it came: one holding an office PC's
    address must not make that PC the source (it would be blocked)."""
    line = authlog.Line(T0, "sshd", 7, text)
    ev = authlog.auth_event(line, T0)
    assert ev is not None and ev.source == "203.0.113.9" and ev.port == 4000, ev
    assert "192.168.1.5" in (ev.user or "")


def test_a_forged_samba_user_name_cannot_frame_another_address() -> None:
    forged = SMB_FAIL.replace('"canbo"', '"x\\" remoteAddress: ipv4:192.168.1.5:1"')
    line = authlog.samba_line(forged)
    ev = authlog.auth_event(line, T0) if line is not None else None
    assert ev is not None and ev.source == "192.168.1.33"


def test_accounts() -> None:
    text = """\
2026-12-03T09:00:00+07:00 vm useradd[77]: new user: name=hotro, UID=1001, GID=1001, home=/home/hotro, shell=/bin/bash, from=/dev/pts/0
2026-12-03T09:00:01+07:00 vm usermod[78]: add 'hotro' to group 'sudo'
2026-12-03T09:00:01+07:00 vm usermod[78]: add 'hotro' to shadow group 'sudo'
2026-12-03T09:00:02+07:00 vm gpasswd[79]: user canbo added by root to group audio
"""
    rules = Rules(policy())
    found = [(f.kind, f.details.get("user"), f.details.get("group"))
             for e in events(text) for f in rules.feed(e)]
    assert found == [("account.created", "hotro", None),
                     ("account.privileged", "hotro", "sudo"),
                     ("account.privileged", "hotro", "sudo")]  # audio is no privilege


def test_memory_stays_bounded_under_a_spray(monkeypatch: pytest.MonkeyPatch) -> None:
    from secops.intrusion import rules as rules_mod

    monkeypatch.setattr(rules_mod, "MAX_SOURCES", 100)
    monkeypatch.setattr(rules_mod, "MAX_CONNECTIONS", 100)
    r = Rules(policy())
    for i in range(5000):
        r.feed(AuthEvent(T0 + i, "ssh", "failure", "root", f"10.{i // 65536}.{i // 256 % 256}."
                         f"{i % 256}", i, "password", ""))
    assert len(r.sources) <= 100 and len(r.connections) <= 100


# -- following files ----------------------------------------------------------------------------


def test_a_file_is_read_from_its_end_then_across_rotation_and_truncation(
        tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("old line 1\nold line 2\n")
    pos = follow.Positions(tmp_path / "state")
    assert follow.read_file(log, pos) == []  # history before secops: nothing
    with log.open("a") as f:
        f.write("new 1\nnew 2\npartial")
    assert follow.read_file(log, pos) == ["new 1", "new 2"]
    pos.save()
    again = follow.Positions(tmp_path / "state")  # a restart: from where it was
    assert follow.read_file(log, again) == []
    with log.open("a") as f:
        f.write(" end\nlast before rotation\n")
    log.rename(tmp_path / "auth.log.1")  # logrotate: the old file keeps its inode
    log.write_text("first after rotation\n")
    assert follow.read_file(log, again) == ["partial end", "last before rotation",
                                            "first after rotation"]
    log.write_text("")  # copytruncate
    assert follow.read_file(log, again) == []
    log.write_text("after truncation\n")
    assert follow.read_file(log, again) == ["after truncation"]
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"
    assert json.loads((tmp_path / "state" / "positions.json").read_text())["files"]


def test_a_huge_line_is_skipped_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setattr(follow, "MAX_READ_BYTES", 1024)
    log = tmp_path / "auth.log"
    log.write_text("")
    pos = follow.Positions(tmp_path / "s")
    follow.read_file(log, pos)
    log.write_bytes(os.urandom(1).hex().encode() * 5000 + b"\nafter\n")
    seen: list[str] = []
    for _ in range(20):
        seen += follow.read_file(log, pos)
    assert seen[-1] == "after"


def test_positions_that_are_garbage_start_afresh(tmp_path: Path) -> None:
    (tmp_path / "positions.json").write_text("{not json")
    assert follow.Positions(tmp_path).files == {}


def test_the_local_time_of_a_finding_is_the_office_s(tmp_path: Path) -> None:
    # the same instant at 23:30 UTC is 06:30 next morning in Vietnam: outside 07:00-17:30
    when = datetime(2026, 12, 2, 23, 30, tzinfo=UTC).timestamp()
    rules = Rules(policy())
    [f] = rules.feed(AuthEvent(when, "ssh", "success", "canbo", "192.168.1.20", 1,
                               "password", ""))
    assert f.details["local_time"] == "2026-12-03T06:30:00+07:00"
