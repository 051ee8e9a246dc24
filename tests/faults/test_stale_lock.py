"""A restic SIGKILLed while it held its repository lock (kill -9 of the daemon takes its
restic child with it under KillMode=mixed; the OOM killer; a person) leaves the lock behind,
and a person's plain `restic check` then refuses the repository (issue 15, item 5). The
daemon's first backup of each target after its start removes stale locks (restic's own
judgement: only locks of processes that no longer exist), so the repository is usable again."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from faults.common import settled
from integration.daemon import Daemon, wait_for
from integration.office import QUIET_SCHEDULE, Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def restic_env(office: Office, repo: Path) -> dict[str, str]:
    cache = office.root / "person-cache"
    cache.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(office.root),
            "RESTIC_PASSWORD_FILE": str(office.password_file("local")),
            "RESTIC_REPOSITORY": str(repo), "RESTIC_CACHE_DIR": str(cache)}


def plain_check(office: Office, repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["restic", "check"], env=restic_env(office, repo),
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_lock_left_by_a_killed_restic_is_removed_by_the_daemon(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    office = Office(tmp_path, [target_toml("local", str(repo))], tail=QUIET_SCHEDULE).write()
    assert office.run("init").code == 0
    assert plain_check(office, repo).returncode == 0  # the twin: no lock, check works
    # a backup that holds its lock while it waits on its input, killed as kill -9 kills
    holder = subprocess.Popen(["restic", "backup", "--stdin", "--stdin-filename", "x.csv"],
                              stdin=subprocess.PIPE, env=restic_env(office, repo),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any((repo / "locks").iterdir()), 60, "restic to take its lock")
    finally:
        holder.kill()
        holder.wait(30)
    assert any((repo / "locks").iterdir())  # left behind
    refused = plain_check(office, repo)
    assert refused.returncode != 0 and "lock" in refused.stderr.lower(), refused.stderr
    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(office), 120, "the daemon's first backup")
        deadline = time.monotonic() + 60
        while any((repo / "locks").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.2)  # the backup's own lock goes when it ends
        done = plain_check(office, repo)
        assert done.returncode == 0, done.stderr
    finally:
        d.stop()
