"""The login watch against real programs (issue 16, detections): a real sshd (PAM, password
authentication on) logging through a real rsyslogd into an auth.log in Debian 12's format,
paramiko guessing passwords and then logging in with the right key, the real daemon reading
the file. Raised: ``auth.bruteforce`` with the source, ``auth.login_after_failures`` and its
playbook's message; not raised: an honest key login, the same lines again after a restart;
followed: a rotation (rename + rsyslog's reopen on SIGHUP)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from faults.common import drop_subjects

from integration.daemon import Daemon, wait_for
from integration.office import PLAYBOOK_TAIL, Office, target_toml
from integration.servers import (
    LOOPBACK,
    ManagedProcess,
    SambaServer,
    free_port,
    minimal_env,
    run_checked,
)

pytestmark = [pytest.mark.requires_gpg]

RSYSLOG_CONF = """\
module(load="imuxsock")
$WorkDirectory {work}
auth,authpriv.* {auth_log}
"""
SSHD_CONF = """\
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {work}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
StrictModes no
UseDNS no
MaxStartups 50
AuthorizedKeysFile {authorized_keys}
"""


class Syslogged:
    """rsyslogd on /dev/log writing auth.log, and an sshd that logs through it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.auth_log = work / "auth.log"
        self.port = free_port()
        env = minimal_env(work)
        self.host_key = work / "host_key"
        self.client_key = work / "client_key"
        for key in (self.host_key, self.client_key):
            run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], env)
        (work / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        (work / "rsyslog.conf").write_text(RSYSLOG_CONF.format(work=work,
                                                               auth_log=self.auth_log))
        (work / "sshd_config").write_text(SSHD_CONF.format(
            host=LOOPBACK, port=self.port, host_key=self.host_key, work=work,
            authorized_keys=work / "authorized_keys"))
        rsyslogd = shutil.which("rsyslogd")
        assert rsyslogd, "rsyslog is missing: `make deps` installs it"
        self.rsyslog = ManagedProcess([rsyslogd, "-n", "-f", str(work / "rsyslog.conf"),
                                       "-i", str(work / "rsyslogd.pid")],
                                      log_path=work / "rsyslogd.out", env=env)
        self.sshd = ManagedProcess(["/usr/sbin/sshd", "-D", "-f", str(work / "sshd_config")],
                                   log_path=work / "sshd.out", env=env)

    def start(self) -> None:
        assert not os.path.exists("/dev/log"), "another syslog daemon owns /dev/log"
        self.rsyslog.start()
        self.rsyslog.wait_ready(lambda: os.path.exists("/dev/log"), timeout=30,
                                what="rsyslogd")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.sshd.start()
        self.sshd.wait_ready(lambda: "Server listening" in self.text(), timeout=30,
                             what="sshd logging to rsyslog")

    def stop(self) -> None:
        self.sshd.stop()
        self.rsyslog.stop()

    def text(self) -> str:
        return self.auth_log.read_text(errors="replace") if self.auth_log.exists() else ""

    def rotate(self) -> None:
        self.auth_log.rename(self.auth_log.with_name("auth.log.1"))
        pid = self.rsyslog.pid
        assert pid is not None
        # what logrotate's postrotate does: rsyslog closes its files and opens them again
        # at the next message
        os.kill(pid, signal.SIGHUP)

    def guess(self, user: str, count: int) -> None:
        """``count`` wrong passwords for ``user``, one connection each, in parallel."""
        def one() -> None:
            c = paramiko.SSHClient()
            c.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - the attacker
            try:
                c.connect(LOOPBACK, self.port, username=user, password="sai-mat-khau",
                          look_for_keys=False, allow_agent=False, timeout=30,
                          banner_timeout=30, auth_timeout=30)
            except paramiko.AuthenticationException:
                pass
            finally:
                c.close()
        threads = [threading.Thread(target=one) for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    def login(self) -> None:
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - test server
        try:
            c.connect(LOOPBACK, self.port, username="root", key_filename=str(self.client_key),
                      look_for_keys=False, allow_agent=False, timeout=30)
        finally:
            c.close()


@pytest.fixture(scope="module")
def syslogged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Syslogged]:
    s = Syslogged(tmp_path_factory.mktemp("syslog"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def alerts(office: Office, kind: str) -> list[dict[str, Any]]:
    return [a for a in office.run("status", "--json").json()["alerts"] if a["kind"] == kind]


def test_guessed_passwords_are_told_once_across_restart_and_rotation(
        tmp_path: Path, syslogged: Syslogged) -> None:
    drop = tmp_path / "drop"
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    tail=PLAYBOOK_TAIL.format(drop=drop) + f"""
[intrusion]
sources = ["{syslogged.auth_log}"]
max_failures = 4
find_minutes = 10
office_hours = "00:00-23:59"
office_days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
""").write()
    assert office.run("init").code == 0
    syslogged.guess("root", 5)  # before secops watched: history, never alerted
    wait_for(lambda: syslogged.text().count("Failed password") >= 5, 60, "the old failures")
    d = Daemon(office).start()
    try:
        wait_for(lambda: "login watch:" in d.log(), 30, "the login watch")
        syslogged.login()  # the twin: an honest key login raises nothing
        wait_for(lambda: "Accepted publickey" in syslogged.text(), 30, "the honest login")
        syslogged.guess("root", 2)
        syslogged.guess("quantri", 2)  # an invalid user: counted with the rest
        wait_for(lambda: bool(alerts(office, "auth.bruteforce")), 60, "auth.bruteforce")
        [brute] = alerts(office, "auth.bruteforce")
        assert brute["details"]["source"] == LOOPBACK, brute
        assert brute["details"]["failures"] == 4 and brute["details"]["users"] == [
            "quantri", "root"], brute
        assert alerts(office, "auth.login_after_failures") == []
        # its playbook never blocks loopback (the step is refused) and still tells the office
        wait_for(lambda: any(f"Dò mật khẩu từ địa chỉ {LOOPBACK}" in s
                             for s in drop_subjects(drop)), 60, "the auth-bruteforce notice")
        listed = office.run("blocked", "--json")
        assert listed.code == 0 and listed.json() == [], listed.out + listed.err
        syslogged.login()  # the right key, right after the guesses: a guess that worked?
        wait_for(lambda: bool(alerts(office, "auth.login_after_failures")), 60,
                 "auth.login_after_failures")
        [after] = alerts(office, "auth.login_after_failures")
        assert (after["details"]["user"], after["details"]["method"]) == ("root", "publickey")
        wait_for(lambda: any("sau nhiều lần sai mật khẩu" in s for s in drop_subjects(drop)),
                 60, "the playbook's message to the chair and the police")
        assert d.stop() == 0
        d = Daemon(office).start()  # the same lines are not news after a restart
        wait_for(lambda: d.count("login watch: ") >= 2, 30, "the login watch again")
        syslogged.rotate()
        syslogged.guess("root", 4)  # into the new file
        wait_for(lambda: len(alerts(office, "auth.bruteforce")) == 2, 60,
                 "auth.bruteforce from the rotated log")
        assert len(alerts(office, "auth.login_after_failures")) == 1
        assert len(alerts(office, "auth.bruteforce")) == 2  # never the old lines again
    finally:
        d.stop()


def smb_login(samba: SambaServer, password: str) -> int:
    done = subprocess.run(["smbclient", f"//{LOOPBACK}/{samba.share}", "-p", str(samba.port),
                           "-U", f"{samba.user}%{password}", "-c", "ls"],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode


def test_wrong_samba_passwords_from_a_clerk_pc_are_a_bruteforce(
        tmp_path: Path, samba_server: SambaServer) -> None:
    """A real smbd's JSON authentication audit (``auth_json_audit:3``) read by the daemon:
    three wrong passwords are ``auth.bruteforce`` over SMB with the client's address, the
    right one after them ``auth.login_after_failures``; the twin, a clerk's ordinary
    logins, raises nothing."""
    smb_log = samba_server.workdir / "smbd.log"
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    tail=PLAYBOOK_TAIL.format(drop=tmp_path / "drop") + f"""
[intrusion]
sources = []
samba_log = "{smb_log}"
max_failures = 3
office_hours = "00:00-23:59"
office_days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
""").write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    try:
        wait_for(lambda: "login watch: " in d.log(), 30, "the login watch")
        for _ in range(2):
            assert smb_login(samba_server, samba_server.password) == 0  # the twin
        for _ in range(3):
            assert smb_login(samba_server, "sai-mat-khau") != 0
        wait_for(lambda: bool(alerts(office, "auth.bruteforce")), 60, "auth.bruteforce")
        [brute] = alerts(office, "auth.bruteforce")
        d_ = brute["details"]
        assert (d_["source"], d_["services"], d_["failures"]) == (LOOPBACK, ["smb"], 3), d_
        assert d_["users"] == [f"WORKGROUP\\{samba_server.user}"], d_
        assert alerts(office, "auth.login_after_failures") == []
        assert smb_login(samba_server, samba_server.password) == 0
        wait_for(lambda: bool(alerts(office, "auth.login_after_failures")), 60,
                 "auth.login_after_failures")
        [after] = alerts(office, "auth.login_after_failures")
        assert after["details"]["service"] == "smb"
    finally:
        d.stop()


def test_a_samba_user_name_of_kilobytes_is_still_one_counted_failure(
        tmp_path: Path, samba_server: SambaServer) -> None:
    """A real smbd cuts a JSON audit record longer than its 4 KiB debug buffer over several
    lines (``" +>"``): a client that sends a user name of kilobytes must still be counted,
    with its real address; the twin, an ordinary wrong password, is counted as ever."""
    from secops.intrusion import authlog, follow

    smb_log = samba_server.workdir / "smbd.log"
    positions = follow.Positions(tmp_path / "positions")
    follow.read_file(smb_log, positions)  # from its end
    records = authlog.SambaRecords()
    seen: list[authlog.AuthEvent] = []

    def read() -> list[authlog.AuthEvent]:
        for text in follow.read_file(smb_log, positions):
            line = records.feed(text)
            ev = authlog.auth_event(line, 0.0) if line is not None else None
            if ev is not None:
                seen.append(ev)
        return seen

    long_user = "nguoi-la-" + "x" * 6000
    done = subprocess.run(["smbclient", f"//{LOOPBACK}/{samba_server.share}", "-p",
                           str(samba_server.port), "-U", f"{long_user}%sai", "-c", "ls"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert smb_login(samba_server, "sai-mat-khau") != 0  # the twin
    wait_for(lambda: len(read()) >= 2, 30, "both failures in the audit")
    assert [(e.kind, e.source) for e in seen] == [("failure", LOOPBACK)] * 2, seen
    assert long_user in (seen[0].user or "")
    assert seen[1].user == f"WORKGROUP\\{samba_server.user}"


def test_a_port_opened_to_the_network_is_told_and_its_playbook_runs(tmp_path: Path) -> None:
    """The host watch in the real daemon: a port opened on all addresses while it runs is
    ``service.new_listener`` with the process behind it, and the new-listener playbook
    tells the office; the twin, a port on loopback only, is never told."""
    drop = tmp_path / "drop"
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    tail=PLAYBOOK_TAIL.format(drop=drop) + "\n[intrusion]\nsources = []\n"
                    ).write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    opened: list[socket.socket] = []
    try:
        wait_for(lambda: "login watch:" in d.log(), 30, "the login watch")
        wait_for((office.state / "intrusion" / "host.json").exists, 60,
                 "the host watch's first look")
        for address in (LOOPBACK, "0.0.0.0"):  # noqa: S104 - the listener under test
            s = socket.socket()
            s.bind((address, 0))
            s.listen()
            opened.append(s)
        inside, outside = (int(s.getsockname()[1]) for s in opened)
        wait_for(lambda: any(a["details"]["port"] == outside
                             for a in alerts(office, "service.new_listener")), 60,
                 "service.new_listener")
        mine = [a["details"] for a in alerts(office, "service.new_listener")
                if a["details"]["port"] in (inside, outside)]
        assert [m["port"] for m in mine] == [outside], mine
        assert f"pid {os.getpid()}" in mine[0]["process"], mine
        wait_for(lambda: any(f"tcp/{outside}" in s for s in drop_subjects(drop)), 60,
                 "the new-listener notice")
    finally:
        for s in opened:
            s.close()
        d.stop()
