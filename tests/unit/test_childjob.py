"""Jobs in a child process (issue 18: the daemon's memory does not follow the tree).

What the daemon relies on: the answer, or the job's own exception (type, words, hint);
progress reaches the stall watch; the daemon's shutdown (``process.interrupt_all``)
interrupts what the child runs; a child that dies is an error, never a hang; a child
outlives no daemon.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from integration.daemon import wait_for
from secops import childjob, process
from secops.childjob import ChildJobFailed
from secops.fim.baseline import Baseline


def children_named(name: str, parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2] == name and int(rest.split()[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def job_processes(parent: int) -> list[int]:
    return [pid for pid in children_named("python", parent) + children_named("python3", parent)
            if b"secops.childjob" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_scan_in_the_child_writes_the_baseline_and_answers(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(20):
        (tree / f"{i}.csv").write_text(f"ho ten,{i}\n")
    db = tmp_path / "state.db"
    report = childjob.run("fim_scan", str(db), [str(tree)], [], "baseline")
    assert report.files == 20 and report.unreadable == []
    baseline = Baseline(db)
    assert baseline.count() == 20  # the child's writes are in the daemon's database
    baseline.close()
    (tree / "3.csv").write_text("changed\n")
    changed = childjob.run("fim_scan", str(db), [str(tree)], [], "scan")
    assert [c.path for c in changed.changes] == [str(tree / "3.csv")]


def test_the_job_s_own_error_comes_back_with_its_type_and_words(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileExistsError) as got:  # state.db's folder is a file
        childjob.run("fim_scan", str(blocker / "state.db"), [str(tmp_path)], [], "scan")
    assert got.value.errno == errno.EEXIST and str(blocker) in str(got.value)


def test_progress_reaches_the_daemon_and_interrupt_all_stops_the_child_s_program() -> None:
    seen: list[float] = []
    out: dict[str, object] = {}

    def job() -> None:
        out["code"] = childjob.run("pause", 120, on_progress=lambda: seen.append(1))

    t = threading.Thread(target=job)
    start = time.monotonic()
    t.start()
    wait_for(lambda: bool(seen) and any(children_named("sleep", pid)
                                        for pid in job_processes(os.getpid())),
             60, "the child's program running")
    assert process.interrupt_all() >= 1  # what the daemon's shutdown does
    t.join(60)
    assert not t.is_alive()
    assert out["code"] == -signal.SIGINT
    assert time.monotonic() - start < 60  # interrupted, not the 120 s sleep


def test_a_child_killed_mid_job_is_an_error_not_a_hang() -> None:
    out: dict[str, object] = {}

    def job() -> None:
        try:
            childjob.run("pause", 120)
        except ChildJobFailed as e:
            out["error"] = str(e)

    t = threading.Thread(target=job)
    t.start()
    wait_for(lambda: bool(job_processes(os.getpid())), 60, "the job process")
    for pid in job_processes(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    t.join(60)
    assert not t.is_alive()
    assert "ended without an answer" in str(out["error"])


def test_the_child_dies_with_the_daemon(tmp_path: Path) -> None:
    """kill -9 of the daemon: its job process goes too (PR_SET_PDEATHSIG). Its twin: while
    the daemon lives, the job process is there."""
    script = ("import sys; sys.path[:0] = [sys.argv[1]]\n"
              "from secops import childjob\nchildjob.run('pause', 300)\n")
    daemon = subprocess.Popen([sys.executable, "-c", script, str(Path.cwd())])
    try:
        wait_for(lambda: bool(job_processes(daemon.pid)), 60, "the job process")
        child = job_processes(daemon.pid)[0]
        time.sleep(0.5)
        assert job_processes(daemon.pid) == [child]  # the twin: alive with its daemon
        daemon.kill()
        daemon.wait()
        wait_for(lambda: not Path(f"/proc/{child}").exists()
                 or "Z" in Path(f"/proc/{child}/stat").read_text().rpartition(")")[2][:3],
                 60, "the job process to go with the daemon")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
