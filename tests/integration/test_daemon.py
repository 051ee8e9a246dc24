"""The daemon for real: changes reach every target with no command typed, across kill -9,
outages, SIGTERM and SIGHUP."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.daemon import (
    Daemon,
    restic_check,
    restored_content,
    snapshot_count,
    wait_for,
)
from integration.fastkdf import restic_binary
from integration.office import Office, target_toml
from integration.servers import RestServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_rclone,
              pytest.mark.requires_gpg]

FAST = "debounce_seconds = 1\nmax_delay_seconds = 10"
TAIL = """
[daemon]
retry_min_seconds = 1
retry_max_seconds = 3
outage_alert_minutes = 0.05

[schedule]
backup_every_minutes = 0
check_daily_at = ""
retention_daily_at = ""
drill_weekday = ""
review_weekday = ""
weekly_report_weekday = ""
"""


@pytest.fixture
def office(tmp_path: Path, rest_server: RestServer) -> Office:
    o = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", rest_server.url("daemon-" + tmp_path.name[-16:].lower()),
                    append_only=True),
    ], backup_extra=FAST, tail=TAIL).write()
    assert o.run("init").code == 0
    return o


@pytest.fixture
def daemon(office: Office) -> Iterator[Daemon]:
    d = Daemon(office).start()
    yield d
    d.stop()


def settled(d: Daemon, office: Office) -> bool:
    doc = office.run("status", "--json").json()
    return doc["pending_changes"] == 0 and all(
        t["last_ok"] for t in doc["targets"].values()) and doc["daemon"] == "running"


def test_a_change_reaches_both_targets_with_no_command_typed(office: Office, daemon: Daemon,
                                                             tmp_path: Path) -> None:
    wait_for(lambda: settled(daemon, office), 60, "the first backup after start")
    before = {t: snapshot_count(office, t) for t in ("local", "offsite")}
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    new_text = sheet.read_text(encoding="utf-8") + "Bổ sung: 3 phiếu không hợp lệ\n"
    sheet.write_text(new_text, encoding="utf-8")
    (office.data / "~$lock.xlsx").write_text("office lock file")  # excluded: no backup
    wait_for(lambda: all(snapshot_count(office, t) > before[t] for t in before), 60,
             "a snapshot on every target")
    for t in ("local", "offsite"):
        got = restored_content(office, t, sheet, tmp_path / f"r-{t}")
        assert got.decode("utf-8") == new_text
    metrics = (office.state / "metrics" / "secops.prom").read_text()
    assert 'secops_last_success_timestamp_seconds{office="tan-ky",target="offsite"}' in metrics


def test_excluded_files_never_trigger_a_backup(office: Office, daemon: Daemon) -> None:
    wait_for(lambda: settled(daemon, office), 60, "the first backup after start")
    backups = daemon.count("backup.completed")
    for i in range(5):
        (office.data / f"~$tmp{i}.docx").write_text("x")
        (office.data / f"draft{i}.tmp").write_text("x")
    time.sleep(3)  # three debounce periods: long enough for a wrongly triggered backup
    assert daemon.count("backup.completed") == backups
    assert office.run("status", "--json").json()["pending_changes"] == 0


def test_kill_9_during_a_backup_loses_nothing(office: Office, tmp_path: Path) -> None:
    d = Daemon(office).start()
    wait_for(lambda: settled(d, office), 60, "the first backup after start")
    big = office.data / "phieu-scan" / "lo-lon.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024))
    wait_for(d.restic_child, 30, "a backup to start")
    d.kill9()  # in the middle of the backup
    late = office.data / "danh-sach-cu-tri" / "bo-sung.csv"
    late.write_text("STT,Họ và tên\n1,Đỗ Thị Mai\n", encoding="utf-8")  # while it is down
    d2 = Daemon(office).start()
    try:
        wait_for(lambda: settled(d2, office), 120, "catch-up after the restart")
        for t in ("local", "offsite"):
            assert restored_content(office, t, late, tmp_path / f"late-{t}") == late.read_bytes()
            assert restored_content(office, t, big, tmp_path / f"big-{t}") == big.read_bytes()
        check = restic_check(office, str(office.root / "repo"), "local")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "no errors were found" in check.stdout
    finally:
        d2.stop()


LATE_WRITER = """#!{python}
import os, subprocess, sys
done = subprocess.run([{restic!r}, *sys.argv[1:]], check=False).returncode
if "backup" in sys.argv[1:]:
    try:
        os.unlink({arm!r})  # once: the first backup after the test armed it
    except FileNotFoundError:
        pass
    else:  # restic has read the tree: this write comes after what it took
        with open({victim!r}, "a", encoding="utf-8") as f:
            f.write("3,Lê Văn Tám,bổ sung sau\\n")
sys.exit(done)
"""


def test_a_file_changed_while_restic_runs_reaches_every_target(tmp_path: Path,
                                                               rest_server: RestServer) -> None:
    """The daemon does not re-walk the tree after restic: the write restic missed is a change
    it recorded after that backup's start, so every target backs it up again (and the
    snapshot's signed manifest matches what it holds: the drill passes)."""
    victim = tmp_path / "bau-cu" / "danh-sach-cu-tri" / "bo-sung-muon.csv"
    arm = tmp_path / "arm"
    wrapper = tmp_path / "restic-late-writer"
    wrapper.write_text(LATE_WRITER.format(python=sys.executable, restic=restic_binary(),
                                          arm=str(arm), victim=str(victim)), encoding="utf-8")
    wrapper.chmod(0o755)
    office = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", rest_server.url("late-" + tmp_path.name[-16:].lower()),
                    append_only=True),
    ], backup_extra=FAST, tail=TAIL, restic=str(wrapper)).write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(d, office), 60, "the first backup after start")
        arm.touch()
        victim.write_text("STT,Họ và tên,Ghi chú\n1,Đỗ Thị Mai,\n", encoding="utf-8")
        wait_for(lambda: not arm.exists(), 60, "a backup that meets the late write")
        wait_for(lambda: settled(d, office) and "bổ sung sau" in victim.read_text("utf-8"),
                 90, "the late write backed up")
        for t in ("local", "offsite"):
            assert restored_content(office, t, victim, tmp_path / f"late-{t}") == \
                victim.read_bytes(), t
            drill = office.run("drill", "--target", t)
            assert drill.code == 0, drill.out + drill.err
        assert "changed during the backup" not in d.log()  # nothing re-walked
    finally:
        d.stop()


def test_target_down_is_caught_up_and_alerted(office: Office, rest_server: RestServer,
                                              tmp_path: Path) -> None:
    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(d, office), 60, "the first backup after start")
        sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-02.txt"
        with rest_server.outage():
            sheet.write_text("Kết quả kiểm phiếu lần 2\n", encoding="utf-8")
            wait_for(lambda: office.run("status", "--json").json()["targets"]["offsite"]
                     ["last_ok"] is False, 60, "the offsite target to fail")
            doc = office.run("status", "--json").json()
            assert doc["targets"]["local"]["last_ok"] is True  # the others carry on
            wait_for(lambda: any(a["kind"] == "target.unreachable" for a in
                                 office.run("status", "--json").json()["alerts"]), 30,
                     "a target.unreachable alert")
        wait_for(lambda: settled(d, office), 60, "the offsite target to catch up")
        got = restored_content(office, "offsite", sheet, tmp_path / "caught-up")
        assert got == sheet.read_bytes()
    finally:
        d.stop()


def test_sigterm_exits_0_within_10_s_and_sighup_reloads(office: Office) -> None:
    d = Daemon(office).start()
    wait_for(lambda: settled(d, office), 60, "the first backup after start")
    good = office.config.read_text()
    office.config.write_text(good + "\n[bogus]\nx = 1\n")
    d.signal(signal.SIGHUP)
    wait_for(lambda: "config reload failed" in d.log(), 20, "the failed reload to be logged")
    assert "bogus" in d.log()
    # a mistyped watch folder is refused as it is at start, never watched (nor "missing")
    office.config.write_text(good.replace(f'"{office.data}"', f'"{office.data}-typo"'))
    assert f"{office.data}-typo" in office.config.read_text()
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.log().count("config reload failed") == 2, 20, "the typo refused")
    assert "-typo does not exist" in d.log()
    assert "config.reload_failed" in [a["kind"] for a in
                                      office.run("status", "--json").json()["alerts"]]
    office.config.write_text(good.replace("debounce_seconds = 1", "debounce_seconds = 2"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in d.log(), 20, "the reload")
    assert d.proc is not None and d.proc.poll() is None  # still running throughout
    (office.data / "moi.txt").write_text("x")
    wait_for(lambda: "backing up" in d.log() or "backup.completed" in d.log(), 20, "a backup")
    started = time.monotonic()
    code = d.stop(timeout=15)
    assert code == 0
    assert time.monotonic() - started < 10
    assert office.run("status", "--json").json()["daemon"] == "stopped"


def test_missing_watched_folder_at_start_exit_2(tmp_path: Path) -> None:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))], tail=TAIL).write()
    assert o.run("init").code == 0
    gone = o.data.rename(tmp_path / "elsewhere")
    assert gone.exists()
    done = o.run("run", timeout=60)
    assert done.code == 2
    assert f"paths.watch[0]: {o.data} does not exist" in done.err


def test_the_loop_keeps_pinging_the_systemd_watchdog(office: Office, tmp_path: Path) -> None:
    """systemd kills a Type=notify service whose WATCHDOG=1 pings stop: they must keep
    coming at half the WatchdogSec period, for as long as the daemon runs."""
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    # WatchdogSec=4 s: a ping every 2 s, longer than the loop's other 1 s tick
    d = Daemon(office, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "4000000"})
    try:
        d.start()
        pings: list[float] = []
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "WATCHDOG=1" in msg.split("\n"):
                pings.append(time.monotonic())
        # one ping every 2 s, all along the 9 s
        assert len(pings) >= 4, pings
        assert max(b - a for a, b in itertools.pairwise(pings)) < 3.0
        beat = office.run("status", "--json").json()["daemon"]
        assert beat == "running"
    finally:
        d.stop()
        sock.close()
