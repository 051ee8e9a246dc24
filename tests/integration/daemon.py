"""Run the real daemon (``python -m secops run``) for a test, and wait on conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from integration.office import Office


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Daemon:
    """The real daemon; every instance is stopped by the ``_stop_daemons`` fixture at the
    latest, so a failed assertion never leaves one running."""

    started: list[Daemon] = []  # noqa: RUF012 - a registry shared by design

    def __init__(self, office: Office, *extra: str, env: dict[str, str] | None = None) -> None:
        self.office = office
        self.extra = extra
        self.extra_env = env or {}
        self.log_path = office.root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.office.root), "LANG": "C.UTF-8",
               **self.extra_env}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "secops", "--config", str(self.office.config), "run",
             *self.extra],
            stdout=log, stderr=log, env=env)
        log.close()
        Daemon.started.append(self)
        wait_for(lambda: "daemon ready" in self.log() or self.proc is None
                 or self.proc.poll() is not None, 30, "the daemon to start")
        assert self.proc.poll() is None, self.log()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def restic_child(self) -> bool:
        """Is a restic process of this daemon (or of its job process) running right now?"""
        assert self.proc is not None
        parents: dict[int, int] = {}
        restics: list[int] = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)
                comm = fields[0].split("(", 1)[1]
                parents[int(stat.parent.name)] = int(fields[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if comm == "restic":
                restics.append(int(stat.parent.name))
        for restic in restics:
            up = restic
            for _ in range(3):
                up = parents.get(up, 0)
                if up == self.proc.pid:
                    return True
        return False

    def watcher_pid(self) -> int | None:
        """The daemon's watcher process (``secops.watch.remote``): its child holding an
        inotify instance (or, polling, its one long-lived job process)."""
        assert self.proc is not None
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != self.proc.pid:
                    continue
                cmdline = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if b"secops.childjob" in cmdline:
                kids.append(int(stat.parent.name))
        with_inotify = [k for k in kids if inotify_watches(k) > 0]
        return with_inotify[0] if with_inotify else (kids[0] if len(kids) == 1 else None)

    def count(self, text: str) -> int:
        return self.log().count(text)


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process ``pid`` holds (``/proc/PID/fdinfo``)."""
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            n += Path(f"/proc/{pid}/fdinfo/{fd}").read_text().count("inotify wd:")
        except OSError:
            continue
    return n


def snapshot_count(office: Office, target: str) -> int:
    done = office.run("snapshots", "--target", target, "--json")
    return len(done.json()) if done.code == 0 else -1


def restored_content(office: Office, target: str, path: Path, out: Path) -> bytes:
    done = office.run("restore", "latest", "--target", target, "--to", str(out), "--include",
                      str(path), "--force")
    assert done.code == 0, done.err
    return (out / str(path).lstrip("/")).read_bytes()


def restic_check(office: Office, target_repo: str, target: str,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(office.root),
           "RESTIC_PASSWORD_FILE": str(office.password_file(target)),
           "RESTIC_REPOSITORY": target_repo, "RESTIC_CACHE_DIR": str(office.root / "chk-cache"),
           **(extra_env or {})}
    (office.root / "chk-cache").mkdir(exist_ok=True)
    # A restic killed with its parent leaves a stale lock; `unlock` removes only stale ones,
    # as secops itself does before it retries an exclusive operation.
    subprocess.run(["restic", "unlock"], env=env, capture_output=True, timeout=120, check=True)
    return subprocess.run(["restic", "check"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


__all__ = ["Daemon", "Path", "restic_check", "restored_content", "snapshot_count", "wait_for"]
