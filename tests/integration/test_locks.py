"""Lock contention on restic 0.14 (no --retry-lock): wait for live locks, clear stale ones."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.office import Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))], lock_wait=3).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    yield o


def hold_lock(office: Office, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A real restic backup reading stdin that never ends: it holds a lock on the repo."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "RESTIC_PASSWORD_FILE": str(office.password_file("local")),
           "RESTIC_REPOSITORY": str(tmp_path / "repo"),
           "RESTIC_CACHE_DIR": str(tmp_path / "holder-cache")}
    proc = subprocess.Popen(["restic", "backup", "--stdin", "--stdin-filename", "held"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    locks = tmp_path / "repo" / "locks"
    deadline = time.monotonic() + 30
    while not any(locks.iterdir()):
        assert time.monotonic() < deadline, "restic never took its lock"
        time.sleep(0.05)
    return proc


def test_live_lock_is_waited_for_then_reported(office: Office, tmp_path: Path) -> None:
    holder = hold_lock(office, tmp_path)
    try:
        done = office.run("backup", "retention", "--json")
        assert done.code == 3
        row = done.json()["results"][0]
        assert "locked" in row["error"]
        m = re.search(r"still locked after (\d+) attempts", row["error"])
        assert m and int(m.group(1)) >= 2  # it retried for lock_wait_seconds
        assert any((tmp_path / "repo" / "locks").iterdir())  # a live lock is never removed
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_cleared(office: Office, tmp_path: Path) -> None:
    holder = hold_lock(office, tmp_path)
    os.kill(holder.pid, signal.SIGKILL)  # crash: its lock file stays behind
    holder.wait()
    assert any((tmp_path / "repo" / "locks").iterdir())
    done = office.run("backup", "retention", "--json")
    assert done.code == 0, done.out + done.err
    assert done.json()["results"][0]["ok"] is True
    assert not any((tmp_path / "repo" / "locks").iterdir())
