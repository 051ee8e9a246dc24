# ruff: noqa: E501  (real log lines, kept whole)
"""The login watch's pure parts (issue 16, detections): lines as sshd, smbd, useradd and
usermod write them, through both carriers, judged into findings. Every "must detect" has its
twin that must not."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from secops.config.schema import Config
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


def spray(rules: Rules, user: str, sources: int, start: float = T0) -> list[str]:
    """One failed password for ``user`` from each of ``sources`` addresses, 20 s apart."""
    found = []
    for i in range(sources):
        ev = AuthEvent(start + 20 * i, "ssh", "failure", user, f"203.0.113.{i + 1}",
                       40000 + i, "password", f"Failed password for {user}")
        found += [f.kind for f in rules.feed(ev)]
    return found


def test_one_account_guessed_from_many_addresses_is_a_spray_told_once() -> None:
    """Each address under its own threshold (one try each): five addresses on one account
    within the window are ``auth.password_spray``, once per window. The twins: four
    addresses; five addresses on five different accounts; five spread over more than the
    window."""
    rules = Rules(policy())
    assert spray(rules, "root", 7) == ["auth.password_spray"]
    assert spray(Rules(policy()), "root", 4) == []
    mixed = Rules(policy())  # five clerks, each mistyping once on their own PC
    assert [f.kind for i in range(5) for f in mixed.feed(AuthEvent(
        T0 + i, "smb", "failure", f"canbo{i}", f"192.168.1.{10 + i}", 445, "ntlm", ""))] == []
    slow = Rules(policy(find_seconds=60.0))
    assert spray(slow, "root", 5) == []  # 80 s from the first to the fifth
    later = spray(rules, "root", 5, T0 + 3600)  # a new window: told again
    assert later == ["auth.password_spray"]
    smb = Rules(policy())
    [finding] = [f for i in range(1, 6) for f in smb.feed(AuthEvent(
        T0 + i, "smb", "failure", "root", f"198.51.100.{i}", 445, "ntlm", ""))]
    assert finding.details["sources"] == [f"198.51.100.{i}" for i in range(1, 6)]
    assert (finding.details["source_count"], finding.details["services"]) == (5, ["smb"])


def test_memory_stays_bounded_under_a_spray(monkeypatch: pytest.MonkeyPatch) -> None:
    from secops.intrusion import rules as rules_mod

    monkeypatch.setattr(rules_mod, "MAX_SOURCES", 100)
    monkeypatch.setattr(rules_mod, "MAX_CONNECTIONS", 100)
    r = Rules(policy())
    for i in range(5000):
        r.feed(AuthEvent(T0 + i, "ssh", "failure", "root", f"10.{i // 65536}.{i // 256 % 256}."
                         f"{i % 256}", i, "password", ""))
    assert len(r.sources) <= 100 and len(r.connections) <= 100 and len(r.users) <= 100


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


# -- hostile files and records (attacker-side review) ------------------------------------------


def _read_in_thread(path: Path, pos: follow.Positions) -> list[str] | None:
    """``read_file`` with a deadline: None when it did not return (it blocked)."""
    import threading

    out: list[list[str] | BaseException] = []

    def read() -> None:
        try:
            out.append(follow.read_file(path, pos))
        except BaseException as e:  # handed to the test's thread
            out.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=3.0)
    if not out:
        return None
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def test_a_fifo_in_place_of_the_log_never_blocks_the_watch(tmp_path: Path) -> None:
    """Whoever can replace the log (the syslog group's folder) by a FIFO must not hang the
    daemon's start (``prime`` runs in its main thread) or the watch: not a regular file is
    an error said once, and the watch reads on."""
    from secops.errors import OperationalError

    log = tmp_path / "auth.log"
    log.write_text("old\n")
    pos = follow.Positions(tmp_path / "s")
    assert follow.read_file(log, pos) == []
    log.unlink()
    os.mkfifo(log)
    for _ in range(2):  # the first meeting of the new inode and the next read
        try:
            got = _read_in_thread(log, pos)
        except OperationalError as e:
            assert "not a regular file" in str(e)
            continue
        assert got == [], "read_file blocked on a FIFO"
    # the twin: the real log back in place is read again
    log.unlink()
    log.write_text("")
    follow.read_file(log, pos)
    with log.open("a") as f:
        f.write("after\n")
    assert _read_in_thread(log, pos) == ["after"]


def test_a_link_to_a_device_is_not_read_as_a_log(tmp_path: Path) -> None:
    from secops.errors import OperationalError

    log = tmp_path / "auth.log"
    log.symlink_to("/dev/zero")
    pos = follow.Positions(tmp_path / "s")
    pos.files[str(log)] = follow.Position(os.stat("/dev/zero").st_ino, 10)
    with pytest.raises(OperationalError, match="not a regular file"):
        follow.read_file(log, pos)


SEPARATORS = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"]


@pytest.mark.parametrize("sep", SEPARATORS)
def test_a_line_separator_in_a_user_name_does_not_split_the_record(tmp_path: Path,
                                                                   sep: str) -> None:
    """smbd writes the client's user name raw inside its JSON (jansson escapes only what
    JSON must): U+2028, NEL and the other characters Python's ``splitlines`` breaks on
    would cut a real failure into two pieces that are no JSON: unlimited guesses, unseen."""
    log = tmp_path / "log.smbd"
    log.write_text("")
    pos = follow.Positions(tmp_path / "s")
    follow.read_file(log, pos)
    record = SMB_FAIL.replace('"canbo"', json.dumps(f"can{sep}bo", ensure_ascii=False))
    with log.open("a", encoding="utf-8") as f:
        f.write(record + "\n" + SMB_FAIL + "\n")
    lines = follow.read_file(log, pos)
    assert len(lines) == 2, lines  # the twin (an honest record) is the second
    evs = [authlog.auth_event(ln, T0) for t in lines if (ln := authlog.samba_line(t))]
    assert [(e.kind, e.source) for e in evs if e] == [("failure", "192.168.1.33")] * 2


def read_fake_journal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, out: str
                      ) -> list[dict[str, Any]]:
    """``follow.read_journal`` over a journalctl that prints ``out`` (no journald runs
    here), from a kept cursor."""
    import shutil

    from secops import process

    monkeypatch.setattr(shutil, "which", lambda name, **kw: "/usr/bin/journalctl")
    monkeypatch.setattr(process, "run", lambda argv, **kw: process.Completed(
        tuple(argv), 0, out, "", 0.0))
    cursor = tmp_path / "j" / "journal.cursor"
    cursor.parent.mkdir()
    cursor.write_text("s=1")
    return follow.read_journal(cursor)


def test_a_line_separator_in_a_journal_message_does_not_lose_the_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"MESSAGE": "Failed password for invalid user a\u2028b from 10.0.0.9 port 1 "
                        "ssh2", "SYSLOG_IDENTIFIER": "sshd", "_PID": "1"}
    honest = {**entry, "MESSAGE": "Failed password for root from 10.0.0.9 port 2 ssh2"}
    out = "\n".join(json.dumps(e, ensure_ascii=False) for e in (entry, honest)) + "\n"
    got = read_fake_journal(monkeypatch, tmp_path, out)
    assert [e["MESSAGE"] for e in got] == [entry["MESSAGE"], honest["MESSAGE"]]


def test_the_rest_of_a_rotated_file_larger_than_one_read_is_not_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood written just before logrotate (or while the daemon was down) must not push
    the rest of the old file out of sight: it is read over the next polls, then the new."""
    monkeypatch.setattr(follow, "MAX_READ_BYTES", 1 << 16)
    log = tmp_path / "auth.log"
    log.write_text("")
    pos = follow.Positions(tmp_path / "s")
    follow.read_file(log, pos)
    flood = [f"noise {i:06d} " + "x" * 50 for i in range(3000)]  # ~190 KiB
    with log.open("a") as f:
        f.write("\n".join([*flood, "the attack"]) + "\n")
    log.rename(tmp_path / "auth.log.1")
    log.write_text("first after rotation\n")
    seen: list[str] = []
    for _ in range(10):
        seen += follow.read_file(log, pos)
    assert seen == [*flood, "the attack", "first after rotation"]


@pytest.mark.parametrize("doc", [
    "[]", '{"files": []}', '{"files": {"/x": 3}}', '{"files": {"/x": {"inode": 1e400, '
    '"offset": 1}}}', '{"files": {"/x": {"inode": 1, "offset": -5}}}', '"text"',
    '{"files": {"/x": {"inode": "1", "offset": null}}}'])
def test_a_positions_file_of_any_shape_starts_that_source_afresh(tmp_path: Path,
                                                                 doc: str) -> None:
    """A damaged positions file must not stop the daemon's start (the watch is built in
    its main thread) nor leave a source unreadable for good (a negative offset)."""
    (tmp_path / "positions.json").write_text(doc)
    pos = follow.Positions(tmp_path)
    assert pos.files == {}


def test_a_good_position_beside_a_bad_one_is_kept(tmp_path: Path) -> None:
    (tmp_path / "positions.json").write_text(json.dumps({"files": {
        "/good": {"inode": 7, "offset": 10}, "/bad": {"inode": 7, "offset": -1}}}))
    assert follow.Positions(tmp_path).files == {"/good": follow.Position(7, 10)}


def _watch_config(tmp_path: Path, sources: list[str], samba: str | None = None) -> Config:
    from minimal_config import MINIMAL_TOML

    from secops.config.loader import load_config

    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "secops.toml"
    extra = f"samba_log = {json.dumps(samba)}\n" if samba else ""
    path.write_text(MINIMAL_TOML + f"[intrusion]\nsources = {json.dumps(sources)}\n"
                    f"max_failures = 3\n{extra}", encoding="utf-8")
    return load_config(path)


def test_one_broken_source_does_not_blind_the_others(tmp_path: Path) -> None:
    """A source that cannot be read (here a FIFO where smbd's log was) is an error of its
    own: the lines the other sources gave in the same poll are still judged."""
    from secops.intrusion.watch import LoginWatch

    good, bad = tmp_path / "auth.log", tmp_path / "log.smbd"
    good.write_text("")
    os.mkfifo(bad)
    cfg = _watch_config(tmp_path, [str(good)], samba=str(bad))
    watch = LoginWatch(cfg, tmp_path / "state")
    watch.prime()
    now = datetime.now().astimezone()
    with good.open("a") as f:
        for i in range(3):
            f.write(f"{now.isoformat()} vm sshd[{i}]: Failed password for root from "
                    f"203.0.113.9 port {4000 + i} ssh2\n")
    found = watch.poll()
    assert [f.kind for f in found] == ["auth.bruteforce"]
    assert any("log.smbd" in str(e) and "not a regular file" in str(e)
               for e in watch.errors), watch.errors
    # the twin: with every source readable there is no error
    bad.unlink()
    bad.write_text("")
    watch.poll()
    assert watch.errors == []


def smbd_writes(message: str) -> list[str]:
    """The lines smbd's log file gets for ``message`` (lib/util/debug.c,
    format_debug_text): two spaces of indent, and a line longer than its 4 KiB buffer cut,
    each piece but the last ending in the continuation mark ``" +>"``."""
    out, line = [], "  "
    for c in message:
        line += c
        if len(line) >= 4095:
            out.append(line + " +>")
            line = "  "
    return [*out, line]


def samba_events(lines: list[str]) -> list[AuthEvent]:
    records = authlog.SambaRecords()
    return [ev for text in lines if (ln := records.feed(text))
            if (ev := authlog.auth_event(ln, T0))]


def test_a_long_samba_record_is_joined_not_dropped() -> None:
    """A client may send a workstation (or user) name of many kilobytes: smbd cuts the
    JSON record over several lines, and a reader that drops what does not parse lets
    that client guess passwords unseen."""
    long = SMB_FAIL.replace('"PC-01"', json.dumps("W" * 20000))
    lines = smbd_writes(long)
    assert len(lines) > 4
    got = samba_events(["[2026/12/03 09:00:00.588558,  3] ../../auth/auth_log.c:1(f)",
                        *lines, *smbd_writes(SMB_FAIL)])
    assert [(e.kind, e.source, e.user) for e in got] == [
        ("failure", "192.168.1.33", "WORKGROUP\\canbo")] * 2


def test_a_record_forged_in_the_continuation_of_another_line_is_nothing() -> None:
    """The human-readable ``Auth:`` line carries the client's workstation name too: one
    long enough puts the client's own text at the start of a continuation line. A record
    never starts there."""
    forged = SMB_FAIL.replace("192.168.1.33", "192.168.1.77")
    human = ("Auth: [SMB2,(null)] user [WORKGROUP]\\[canbo] at [Thu, 03 Dec 2026] with "
             "[NTLMv2] status [NT_STATUS_WRONG_PASSWORD] workstation [")
    pad = "W" * (4093 - len(human))
    lines = smbd_writes(human + pad + forged + "] remote host [ipv4:203.0.113.9:1].")
    assert lines[1].lstrip().startswith('{"timestamp"')  # the forgery is where it aimed
    exact = smbd_writes(human + pad + forged.ljust(4093) + "] remote host [ipv4:1.2.3.4:1]")
    for attempt in (lines, exact):
        assert [e.source for e in samba_events(attempt)] == []
    # the twin: the same record written by smbd itself, after that line, is read
    assert [e.source for e in samba_events([*lines, *smbd_writes(forged)])] == [
        "192.168.1.77"]


def test_a_reload_does_not_forget_the_failures_counted_so_far(tmp_path: Path) -> None:
    """SIGHUP rebuilds the watch (new thresholds, hours, sources): the failures it counted
    go on counting, else each reload gives an attacker a fresh allowance."""
    from secops.intrusion.watch import LoginWatch

    log = tmp_path / "auth.log"
    log.write_text("")
    cfg = _watch_config(tmp_path, [str(log)])
    first = LoginWatch(cfg, tmp_path / "state")
    first.prime()
    now = datetime.now().astimezone()

    def fail(port: int) -> None:
        with log.open("a") as f:
            f.write(f"{now.isoformat()} vm sshd[1]: Failed password for root from "
                    f"203.0.113.9 port {port} ssh2\n")

    fail(1)
    fail(2)
    assert first.poll() == []
    again = LoginWatch(cfg, tmp_path / "state", previous=first)
    fresh = LoginWatch(cfg, tmp_path / "state")  # the twin
    fail(3)
    assert [f.kind for f in again.poll()] == ["auth.bruteforce"]
    assert fresh.poll() == []


def test_a_traditional_line_from_last_year_read_in_january_is_not_from_next_year() -> None:
    """The old syslog format has no year: ``Dec 31 23:59:59`` read just after midnight on
    New Year's day is the year before, not a time a year ahead (which would keep its
    source's failures, and its "already told", for a year)."""
    new_year = datetime(2027, 1, 1, 0, 0, 2, tzinfo=ICT).timestamp()
    line = authlog.parse_syslog("Dec 31 23:59:59 vm sshd[1]: Failed password for root from "
                                "10.0.0.9 port 1 ssh2", year=2027, tz=ICT, now=new_year)
    assert line is not None and line.time == new_year - 3
    # the twin: a line of today is today's
    today = authlog.parse_syslog("Jan  1 00:00:01 vm sshd[1]: x", year=2027, tz=ICT,
                                 now=new_year)
    assert today is not None and today.time == new_year - 1


@pytest.mark.parametrize("entry", [
    {"MESSAGE": [float("inf")], "SYSLOG_IDENTIFIER": "sshd"},
    {"MESSAGE": "Accepted password for a from 203.0.113.9 port 1 ssh2",
     "SYSLOG_IDENTIFIER": "sshd", "__REALTIME_TIMESTAMP": "9" * 30},
    {"MESSAGE": "Accepted password for a from 203.0.113.9 port 1 ssh2",
     "SYSLOG_IDENTIFIER": "sshd", "__REALTIME_TIMESTAMP": "-99999999999999999999"},
])
def test_a_hostile_journal_entry_never_raises_on_its_way_to_the_rules(entry: object) -> None:
    """One entry that raises would end the poll: every other finding read with it lost."""
    rules = Rules(policy())
    line = authlog.parse_journal(entry)
    ev = authlog.auth_event(line, T0) if line is not None else None
    if ev is not None:
        assert ev.time == T0  # a time no clock could give: the reader's is used
        rules.feed(ev)


def test_a_damaged_journal_cursor_is_said_once_then_the_journal_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """journalctl refuses a cursor file it cannot read ("Failed to seek to cursor") at every
    call: kept, it would leave the journal unwatched for good."""
    import shutil

    from secops import process
    from secops.errors import OperationalError

    calls: list[list[str]] = []

    def run(argv: list[str], **kw: object) -> process.Completed:
        calls.append(list(argv))
        if "-n" not in argv:  # journalctl reading on from the (damaged) cursor
            return process.Completed(tuple(argv), 1, "", "Failed to seek to cursor: "
                                     "Invalid argument\n", 0.0)
        cursor.write_text("s=new")
        return process.Completed(tuple(argv), 0, "", "", 0.0)

    monkeypatch.setattr(shutil, "which", lambda name, **kw: "/usr/bin/journalctl")
    monkeypatch.setattr(process, "run", run)
    cursor = tmp_path / "j" / "journal.cursor"
    cursor.parent.mkdir()
    cursor.write_text("garbage;;")
    with pytest.raises(OperationalError, match="cursor"):
        follow.read_journal(cursor)
    assert follow.read_journal(cursor) == []  # at the journal's end again
    assert "-n" in calls[-1] and cursor.read_text() == "s=new"
    # the twin: a failure that is not the cursor's leaves the cursor alone
    calls.clear()
    monkeypatch.setattr(process, "run", lambda argv, **kw: process.Completed(
        tuple(argv), 1, "", "Failed to open journal: Permission denied\n", 0.0))
    with pytest.raises(OperationalError, match="Permission denied"):
        follow.read_journal(cursor)
    assert cursor.read_text() == "s=new"


def test_a_journal_line_of_a_user_s_own_logger_is_not_sshd_s() -> None:
    """``logger -t sshd "Failed password for root from 192.0.2.8 port 1 ssh2"`` by any
    local account gives the identifier sshd; journald's own ``_UID`` says who wrote it.
    sshd, smbd, useradd and usermod write as root."""
    entry = {"MESSAGE": "Failed password for root from 192.0.2.8 port 1 ssh2",
             "SYSLOG_IDENTIFIER": "sshd", "_PID": "4242", "_UID": "1000", "_COMM": "logger"}
    assert authlog.parse_journal(entry) is None
    twin = authlog.parse_journal({**entry, "_UID": "0", "_COMM": "sshd"})
    assert twin is not None and (authlog.auth_event(twin, T0) or None) is not None


@pytest.mark.parametrize("verb", ["Disconnected from", "Connection reset by"])
def test_a_probe_that_says_goodbye_counts_like_one_that_hangs_up(verb: str) -> None:
    """A client that ends with SSH_MSG_DISCONNECT (paramiko, most scanners) gets
    "Disconnected from invalid user ...", one whose connection is reset "Connection reset
    by ...": as much a probe as "Connection closed by" (OpenSSH packet.c, sshpkt_fatal)."""
    probe = (f"2026-12-03T09:00:0{{i}}+07:00 vm sshd[1]: {verb} invalid user admin "
             f"10.0.0.9 port 3400{{i}} [preauth]")
    evs = [e for i in range(3) for e in events(probe.format(i=i))]
    assert [(e.kind, e.source, e.user) for e in evs] == [
        ("probe_closed", "10.0.0.9", "admin")] * 3
    rules = Rules(policy(max_failures=3))
    assert [f.kind for e in evs for f in rules.feed(e)] == ["auth.bruteforce"]
    # the twin: after a counted password on the same connection, the goodbye adds nothing
    twin = Rules(policy(max_failures=2))
    text = ("2026-12-03T09:00:01+07:00 vm sshd[1]: Failed password for invalid user admin "
            "from 10.0.0.9 port 34001 ssh2\n" + probe.format(i=1))
    assert [f for e in events(text) for f in twin.feed(e)] == []


def test_smbd_s_own_rotation_to_old_loses_nothing(tmp_path: Path) -> None:
    """smbd rotates its log itself at ``max log size`` (Debian's smb.conf: 1000 KiB),
    renaming it ``log.smbd.old``: the rest of the old file is read first, as after
    logrotate's ``NAME.1``."""
    log = tmp_path / "log.smbd"
    log.write_text("")
    pos = follow.Positions(tmp_path / "s")
    follow.read_file(log, pos)
    with log.open("a") as f:
        f.write("last of the old\n")
    log.rename(tmp_path / "log.smbd.old")
    log.write_text("first of the new\n")
    assert follow.read_file(log, pos) == ["last of the old", "first of the new"]
    # the twin: an unrelated NAME.old (another inode) is not read
    other = tmp_path / "log.smbd.old"
    other.unlink()
    other.write_text("not ours\n")
    log.rename(tmp_path / "log.smbd.1")
    log.write_text("newest\n")
    assert follow.read_file(log, pos) == ["newest"]


def test_a_copytruncate_the_log_outgrew_before_the_next_read_is_read_from_its_start(
        tmp_path: Path) -> None:
    """copytruncate keeps the inode; when the new content is already longer than the old
    offset at the next read (the daemon was down, or a flood), the size alone cannot tell:
    the bytes before the offset must still be the ones that were read."""
    log = tmp_path / "auth.log"
    log.write_text("a" * 40 + "\n")
    pos = follow.Positions(tmp_path / "s")
    follow.read_file(log, pos)
    pos.save()
    with log.open("r+") as f:  # copytruncate, then the log grows again, past the offset
        f.truncate(0)
        f.write("".join(f"attack {i:03d}\n" for i in range(10)))
    again = follow.Positions(tmp_path / "s")  # across a restart too
    assert follow.read_file(log, again) == [f"attack {i:03d}" for i in range(10)]
    # the twin: lines appended to the same content are read once, after a restart too
    again.save()
    with log.open("a") as f:
        f.write("appended\n")
    assert follow.read_file(log, follow.Positions(tmp_path / "s")) == ["appended"]


def test_what_journalctl_gave_is_all_judged_after_a_long_downtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """journalctl has moved the cursor past every entry it printed: one dropped here (a
    day of an internet-facing sshd's noise while the daemon was down) is never seen."""
    noise = json.dumps({"MESSAGE": "Connection closed by 198.51.100.1 port 1",
                        "SYSLOG_IDENTIFIER": "sshd"})
    attack = json.dumps({"MESSAGE": "Accepted password for root from 203.0.113.9 port 2 ssh2",
                         "SYSLOG_IDENTIFIER": "sshd"})
    out = "\n".join([noise] * 100_000 + [attack]) + "\n"
    got = read_fake_journal(monkeypatch, tmp_path, out)
    assert len(got) == 100_001 and got[-1]["MESSAGE"].startswith("Accepted")


def test_an_error_that_repeats_is_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that fails the same way each time (a full disk under positions.json) must
    not write the journal full twice a second; a new error, or its end, is said again."""
    import time

    from secops.intrusion import watch as watch_mod

    class Failing:
        def __init__(self) -> None:
            self.errors: list[object] = []
            self.fail: Exception | None = OSError(28, "No space left on device")

        def poll(self) -> list[object]:
            if self.fail is not None:
                raise self.fail
            return []

    monkeypatch.setattr(watch_mod, "POLL_S", 0.005)
    said: list[str] = []
    fake = Failing()
    t = watch_mod.LoginWatchThread(fake,  # type: ignore[arg-type]
                                   lambda level, text: said.append(text))
    t.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not said:
            time.sleep(0.01)
        time.sleep(0.1)  # many more polls
        assert len(said) == 1 and "No space left" in said[0], said
        fake.fail = ValueError("another")  # the twin: a different error is said
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(said) < 2:
            time.sleep(0.01)
        assert len(said) == 2 and "another" in said[1]
    finally:
        t.close()
