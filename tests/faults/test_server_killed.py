"""An S3 server (SeaweedFS) SIGKILLed in the middle of an upload (issue 15, item 1): restic
retries a dead endpoint for minutes, which held every other target back ~135 s. Now the
local target takes the change made meanwhile within debounce + 30 s, the S3 target's stalled
backup is stopped and retried, and once the server is back it catches up: every change
restored byte-identical from both, the S3 repository clean."""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import pytest

from faults.common import RETRY_TAIL, more_than, settled, status
from integration.daemon import Daemon, restic_check, restored_content, snapshot_count, wait_for
from integration.office import QUIET_SCHEDULE, Office, target_toml
from integration.servers import S3Server

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_weed,
              pytest.mark.requires_gpg]

STALL_S = 8


def test_an_s3_server_killed_mid_upload_holds_up_no_other_target(
        tmp_path: Path, s3_server: S3Server) -> None:
    env_file = tmp_path / "s3.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in s3_server.env().items()))
    env_file.chmod(0o600)
    bucket = "killed-" + tmp_path.name[-12:].replace("_", "-").lower().strip("-")
    s3_repo = s3_server.url(bucket)
    office = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("s3-tinh", s3_repo, env_file=str(env_file)),
    ], backup_extra=f"debounce_seconds = 1\nmax_delay_seconds = 10\nstall_seconds = {STALL_S}",
        tail=RETRY_TAIL + QUIET_SCHEDULE).write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    scans = office.data / "anh-quet"
    scans.mkdir(exist_ok=True)
    big = scans / "phieu-quet-lon.bin"
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    try:
        wait_for(lambda: settled(office), 120, "the first backup")
        big.write_bytes(os.urandom(40 << 20))  # an upload that takes a while
        wait_for(lambda: status(office)["targets"]["s3-tinh"]["backing_up_since"]
                 is not None, 60, "the S3 upload to start")
        time.sleep(0.5)  # into the upload
        pid = s3_server.process.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # the server dies mid-upload
        s3_server.stop()  # reap
        try:
            before = snapshot_count(office, "local")
            sheet.write_text("Kết quả kiểm phiếu khi máy chủ S3 chết\n", encoding="utf-8")
            start = time.monotonic()
            wait_for(functools.partial(more_than, office, "local", before), 120,
                     "the change on local while the S3 server is dead")
            print(f"change on local after {time.monotonic() - start:.1f} s")
            wait_for(lambda: status(office)["targets"]["s3-tinh"]["last_ok"] is False, 120,
                     "the S3 target failing")
        finally:
            s3_server.start()
        wait_for(lambda: settled(office), 300, "the S3 target to catch up")
        for target in ("local", "s3-tinh"):
            for path in (sheet, big):
                got = restored_content(office, target, path, tmp_path / f"r-{target}")
                assert got == path.read_bytes(), (target, path)
        env = dict(s3_server.env())
        check = restic_check(office, s3_repo, "s3-tinh", env)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        d.stop()
