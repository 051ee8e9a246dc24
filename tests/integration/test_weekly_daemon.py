"""The weekly report comes from the running daemon on Monday morning, by the daemon's own
clock: the test runs the real daemon (``secops.daemon.service.Service``) in its own process
with a clock that starts at Monday 2026-03-16 06:59:57 in Asia/Ho_Chi_Minh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration.daemon import wait_for
from integration.office import Office, target_toml
from integration.servers import SmtpServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

RUNNER = """
import sys, time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from secops.config.loader import load_config
from secops.daemon.service import Service


class MondayClock:
    def __init__(self, start: datetime) -> None:
        self.start, self.t0 = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


start = datetime(2026, 3, 16, 6, 59, 57, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
clock = MondayClock(start)


def log(level: str, message: str) -> None:
    print(f"{clock.now().isoformat()} {level} {message}", flush=True)


sys.exit(Service(lambda: load_config(Path(sys.argv[1])), log, clock=clock).run())
"""


def test_the_daemon_writes_and_sends_the_weekly_report_on_monday(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.clear()
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))], tail=f"""
[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp_server.port}
smtp_security = "none"
recipients = {{ office = ["vanphong@tan-ky.test"] }}
""").write()
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    log = tmp_path / "daemon.log"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TZ": "Asia/Ho_Chi_Minh",
           "LANG": "C.UTF-8"}
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-c", RUNNER, str(office.config)],
                                  stdout=out, stderr=out, env=env)
    pdf = office.state / "reports" / "weekly-2026-W11.vi.pdf"
    try:
        wait_for(lambda: "secops daemon ready" in log.read_text(), 60, "the daemon")
        assert not pdf.exists() or "T07:00" in log.read_text()  # not before 07:00
        wait_for(pdf.exists, 90, "the weekly report of 2026-W11")
        text = log.read_text()
        ready = next(line for line in text.splitlines() if "daemon ready" in line)
        assert ready.startswith("2026-03-16T06:59")  # the daemon started before 07:00
        wait_for(lambda: "weekly report 2026-W11" in log.read_text(), 30, "the log line")
        made = next(line for line in log.read_text().splitlines()
                    if "weekly report 2026-W11" in line)
        assert made >= "2026-03-16T07:00"  # ... and wrote the report once it was 07:00
        assert (office.state / "reports" / "weekly-2026-W11.vi.pdf.asc").exists()
        mail = smtp_server.wait_for_messages(1, timeout=60)[0]
        names = [p.get_filename() for p in mail.message.iter_attachments()]
        assert "weekly-2026-W11.vi.pdf" in names
    finally:
        daemon.terminate()
        daemon.wait(30)
    assert daemon.returncode == 0, log.read_text()[-2000:]
