"""The open gate's parts against the real kernel: process identity, the deny list, the
supervisor that re-creates a stalled gate, the warden that answers for a stopped daemon.

Needs root (fanotify, ns_last_pid): skipped otherwise, failed instead under ``CI=true``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from secops.fim import contain, procid
from secops.fim.denylist import DenyList
from secops.fim.dirwatch import DirWatch
from secops.fim.fanotify import ALLOW, Event, Fanotify
from secops.fim.gate import GIVE_UP_AFTER, Gate, Sentry
from secops.fim.guard import Guard
from secops.fim.state import FimState
from secops.fim.warden import Pulse, Warden

WAIT_S = 10.0
SLACK_S = 3.0
OPEN = """
import sys, time
t = time.monotonic()
with open(sys.argv[1], "rb") as f:
    f.read(1)
print(time.monotonic() - t)
"""


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        reason = "fanotify and ns_last_pid need root"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: missing prerequisites fail instead of skipping)")
        pytest.skip(reason)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = Path(os.path.realpath(tmp_path)) / "watched"
    path.mkdir()
    (path / "target").write_text("original")
    return path


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def at_pid(pid: int) -> subprocess.Popen[bytes]:
    """A sleeper that gets ``pid`` (the kernel hands out the pid after ns_last_pid)."""
    for _ in range(200):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        p = sleeper()
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    pytest.fail(f"could not start a process as pid {pid}")


def opener(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stdout=subprocess.PIPE,
                            text=True, cwd="/")


def waited(proc: subprocess.Popen[str], timeout: float) -> float:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0
    return float(out)


# -- process identity ------------------------------------------------------------------------

def test_the_start_time_names_one_process_and_survives_odd_names(tmp_path: Path) -> None:
    odd = tmp_path / "a b) (c"
    odd.symlink_to(sys.executable)
    child = subprocess.Popen([str(odd), "-c", "import time; time.sleep(60)"])
    try:
        start = procid.start_time(child.pid)
        assert start is not None and start != procid.start_time(os.getpid())
        assert procid.start_time(child.pid) == start
    finally:
        child.kill()
        child.wait()
    assert procid.start_time(child.pid) is None


def test_a_signal_never_reaches_a_process_that_took_a_recycled_pid() -> None:
    first = sleeper()
    start = procid.start_time(first.pid)
    assert start is not None
    time.sleep(0.03)  # start times count clock ticks (10 ms): the newcomer starts ticks later
    first.kill()
    first.wait()
    second = at_pid(first.pid)
    try:
        assert procid.start_time(second.pid) != start
        assert procid.signal_exact(first.pid, start, signal.SIGKILL) == procid.GONE
        assert contain.resume_processes([{"pid": first.pid, "start": start, "stopped": True}],
                                        kill=True) == [{"pid": first.pid, "result": "gone"}]
        assert second.poll() is None, "the newcomer was killed in the stopped process's place"
        # the twin: its own identity reaches it
        own = procid.start_time(second.pid)
        assert own is not None
        assert procid.signal_exact(second.pid, own, signal.SIGKILL) == procid.SENT
        assert second.wait(WAIT_S) == -signal.SIGKILL
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()


def test_stop_records_the_identity_only_after_the_stop() -> None:
    child = sleeper()
    try:
        record = procid.stop(child.pid)
        assert record == {"pid": child.pid, "start": procid.start_time(child.pid),
                          "stopped": True}
        deadline = time.monotonic() + WAIT_S
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "SIGSTOP was not delivered"
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert procid.stop(child.pid) == {"pid": child.pid, "stopped": False,
                                      "error": "already gone"}


def test_a_zombie_is_gone_not_stopped() -> None:
    """A killed writer whose parent has not collected it yet takes a SIGSTOP and does
    nothing: recorded as stopped, it made a second freeze out of the attack's last close."""
    child = sleeper()
    start = procid.start_time(child.pid)
    assert start is not None and not procid.exited(child.pid, start)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + WAIT_S
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not become a zombie"
        time.sleep(0.01)
    try:
        assert procid.exited(child.pid, start)
        assert procid.stop(child.pid) == {"pid": child.pid, "stopped": False,
                                          "error": "already gone"}
    finally:
        child.wait()


def test_unfreeze_kill_releases_the_folders_only_once_the_killed_have_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``unfreeze --kill`` makes the folders writable only once its stopped processes are
    dead, so their files are closed while the freeze still stands."""
    child = sleeper()
    state = FimState(tmp_path / "state.db")
    ended_at_thaw: list[bool] = []
    try:
        record = procid.stop(child.pid)
        start = record["start"]
        assert isinstance(start, int)
        state.record_freeze("test", [record])
        real_thaw = contain.thaw

        def thaw(paths: list[str]) -> list[str]:
            ended_at_thaw.append(procid.exited(child.pid, start))
            return real_thaw(paths)

        monkeypatch.setattr(contain, "thaw", thaw)
        out = contain.unfreeze(state, "kill")
        assert [p["result"] for p in out["processes"]] == ["killed"]
        assert ended_at_thaw == [True]
    finally:
        state.close()
        child.kill()
        child.wait()


# -- the deny list -------------------------------------------------------------------------

def test_the_deny_list_refuses_exactly_the_stopped_process_while_its_freeze_lasts(
        tmp_path: Path) -> None:
    state = FimState(tmp_path / "state.db")
    deny = DenyList(state.released_path)
    child = sleeper()
    try:
        start = procid.start_time(child.pid)
        assert start is not None
        assert not deny.denies(child.pid)
        deny.deny(child.pid, start)
        assert deny.denies(child.pid)
        assert not deny.denies(os.getpid())
        fid = state.record_freeze("test", [{"pid": child.pid, "start": start, "stopped": True}])
        assert deny.refresh(state.active_freeze().processes, fid) == []  # type: ignore[union-attr]
        assert deny.denies(child.pid)
        state.mark_released(fid)  # what `secops unfreeze` writes before it resumes anyone
        assert not deny.denies(child.pid), "a released process was refused"
        assert deny.refresh([], None) == [child.pid]
    finally:
        child.kill()
        child.wait()
        state.close()


def test_the_deny_list_lets_a_recycled_pid_through_and_drops_the_dead(tmp_path: Path) -> None:
    deny = DenyList(tmp_path / "freeze-released")
    first = sleeper()
    start = procid.start_time(first.pid)
    assert start is not None
    deny.deny(first.pid, start)
    time.sleep(0.03)  # start times count clock ticks (10 ms): the newcomer starts ticks later
    first.kill()
    first.wait()
    second = at_pid(first.pid)
    try:
        assert not deny.denies(first.pid), "the newcomer with a recycled pid was refused"
        assert deny.refresh([], None) == [first.pid]
        assert len(deny) == 0
    finally:
        second.kill()
        second.wait()


def test_a_freeze_made_elsewhere_is_taken_into_the_deny_list(tmp_path: Path) -> None:
    """Processes the CLI or a playbook stopped (or stopped before a daemon restart)."""
    state = FimState(tmp_path / "state.db")
    child = sleeper()
    try:
        stopped = contain.stop_processes([child.pid])
        fid = state.record_freeze("playbook", stopped)
        deny = DenyList(state.released_path)
        deny.refresh(stopped, fid)
        assert deny.denies(child.pid)
        assert stopped[0]["start"] == procid.start_time(child.pid)
    finally:
        child.kill()
        child.wait()
        state.close()


# -- new folders ---------------------------------------------------------------------------

def test_every_new_folder_is_reported_with_its_path_and_files_are_not(tmp_path: Path) -> None:
    base = Path(os.path.realpath(tmp_path))
    (base / "watched").mkdir()
    outside = base / "elsewhere"
    outside.mkdir()
    found: list[str] = []
    cond = threading.Condition()

    def on_dir(path: str) -> None:
        with cond:
            found.append(path)
            cond.notify_all()

    dirs = DirWatch()
    dirs.watch(str(base / "watched"))
    stop = threading.Event()
    t = threading.Thread(target=dirs.run, args=(on_dir, lambda: None, stop), daemon=True)
    t.start()
    try:
        subprocess.run(["sh", "-c", "mkdir -p watched/new/deeper && : > watched/new/file && "
                        "mkdir elsewhere/moved && mv elsewhere/moved watched/"],
                       cwd=base, check=True, timeout=WAIT_S)
        want = {str(base / "watched" / "new"), str(base / "watched" / "new" / "deeper"),
                str(base / "elsewhere" / "moved"), str(base / "watched" / "moved")}
        with cond:
            assert cond.wait_for(lambda: want <= set(found), WAIT_S), found
        assert str(base / "watched" / "new" / "file") not in found
    finally:
        stop.set()
        dirs.close()
        t.join(WAIT_S)


# -- the supervisor ------------------------------------------------------------------------

class Stuck:
    """A gate callback that hangs on the first ``times`` opens of ``stall_on`` until
    released (a lock never given back, a /proc read that never returns)."""

    def __init__(self, stall_on: str, times: int = 1) -> None:
        self.stall_on = stall_on
        self.times = times
        self.release = threading.Event()
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, event: Event) -> bool:
        self.seen.append((threading.current_thread().name, event.kind, event.path))
        if event.kind == "open_perm" and event.path == self.stall_on and self.times > 0:
            self.times -= 1
            self.release.wait(60)
        return ALLOW


@pytest.fixture
def degraded() -> list[tuple[str, dict[str, object]]]:
    return []


def gate(callback: Stuck, folder: Path, degraded: list[tuple[str, dict[str, object]]],
         bound_s: float = 1.0, warden: bool = False) -> Gate:
    g = Gate(callback, lambda level, msg: None, lambda r, d: degraded.append((r, d)),
             bound_s=bound_s, warden=warden)
    g.start()
    g.watch_dir(str(folder))
    return g


def test_the_supervisor_releases_opens_a_stuck_gate_holds_and_re_arms_it(
        folder: Path, degraded: list[tuple[str, dict[str, object]]]) -> None:
    (folder / "stall").write_text("x")
    stuck = Stuck(str(folder / "stall"))
    g = gate(stuck, folder, degraded)
    try:
        assert waited(opener(folder / "target"), WAIT_S) < 0.5  # answered at once
        held = opener(folder / "stall")  # the callback hangs on this one
        assert waited(held, g.bound_s + SLACK_S + WAIT_S) <= g.bound_s + SLACK_S
        # said just after the open is let through (the open's process may end first)
        deadline = time.monotonic() + WAIT_S
        while not degraded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r for r, _ in degraded] == ["stalled"]
        assert g.answering()
        # re-armed: the new gate thread answers (and sees) the next open
        seen = len(stuck.seen)
        assert waited(opener(folder / "target"), WAIT_S) < 0.5
        assert ("open_perm", str(folder / "target")) in {(k, p) for _, k, p in stuck.seen[seen:]}
    finally:
        stuck.release.set()  # the stuck thread comes back: its late answer goes nowhere
        g.stop()
    assert all(not t.is_alive() for t in g.threads), "a gate thread outlived the gate"


class Faulty:
    """A judgement that raises on the first close-after-write of ``fail_on`` (a bug, a
    database that cannot be read that moment), and records every event it is given."""

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.failed = False
        self.seen: list[tuple[str, str]] = []
        self.cond = threading.Condition()

    def __call__(self, event: Event) -> bool:
        with self.cond:
            self.seen.append((event.kind, event.path))
            self.cond.notify_all()
        if event.kind == "close_write" and event.path == self.fail_on and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database is locked")
        return ALLOW

    def wait_for(self, kind: str, path: Path) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: (kind, str(path)) in self.seen, WAIT_S)


@pytest.mark.parametrize("group", ["gate", "sentry"])
def test_one_event_s_error_costs_that_event_alone(
        group: str, folder: Path, degraded: list[tuple[str, dict[str, object]]]) -> None:
    """Once, a sentry whose callback raised had stopped for good, and with it the judgement
    of every write through a hard link. Its twin is the write after the failing one: seen."""
    faulty = Faulty(str(folder / "first"))
    guard = Guard(SimpleNamespace(db_path=folder.parent / "state.db",  # type: ignore[arg-type]
                                  cfg=SimpleNamespace(paths=SimpleNamespace(watch=[])),
                                  degraded=lambda r, d: degraded.append((r, d))))
    judged = guard._survive(faulty)
    notes = lambda level, msg: None  # noqa: E731
    g: Gate | Sentry
    if group == "gate":
        g = Gate(judged, notes, lambda r, d: degraded.append((r, d)))
        g.start()
        g.watch_dir(str(folder))
    else:
        g = Sentry(judged, notes, lambda r, d: degraded.append((r, d)))
        g.watch(str(folder))
        g.start()
    try:  # (another process writes: a group never reports its own process)
        write = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x')"]
        subprocess.run([*write, str(folder / "first")], check=True, timeout=WAIT_S)
        assert faulty.wait_for("close_write", folder / "first")
        subprocess.run([*write, str(folder / "second")], check=True, timeout=WAIT_S)
        assert faulty.wait_for("close_write", folder / "second"), faulty.seen
        if group == "gate":  # and opens are still answered
            assert waited(opener(folder / "target"), WAIT_S) < 0.5
        assert [r for r, _ in degraded] == ["judge_failed"]
        assert "database is locked" in str(degraded[0][1]["error"])
    finally:
        g.stop()


def test_a_gate_that_answers_is_never_re_armed(
        folder: Path, degraded: list[tuple[str, dict[str, object]]]) -> None:
    """The twin: a normal gate under a steady stream of opens."""
    g = gate(Stuck(""), folder, degraded)
    try:
        for _ in range(20):
            assert waited(opener(folder / "target"), WAIT_S) < 0.5
        time.sleep(g.bound_s * 1.5)  # idle for longer than the bound: still fine
        assert waited(opener(folder / "target"), WAIT_S) < 0.5
        assert degraded == [] and g.rearms == [] and g.answering()
    finally:
        g.stop()


@pytest.mark.parametrize("warden", [False, True])
def test_a_gate_that_keeps_stalling_is_given_up_and_says_so(
        folder: Path, degraded: list[tuple[str, dict[str, object]]], warden: bool) -> None:
    """Given up, the gate leaves nobody waiting (nor does the warden's duplicate of it)."""
    (folder / "stall").write_text("x")
    stuck = Stuck(str(folder / "stall"), times=100)
    g = gate(stuck, folder, degraded, bound_s=0.5, warden=warden)
    try:
        deadline = time.monotonic() + 10 * (GIVE_UP_AFTER + 1) * g.bound_s + WAIT_S
        while not degraded or degraded[-1][0] != "gate_given_up":
            assert time.monotonic() < deadline, degraded
            assert waited(opener(folder / "stall"), g.bound_s + SLACK_S + WAIT_S) <= \
                g.bound_s + SLACK_S  # each one released within the bound meanwhile
        assert [r for r, _ in degraded].count("stalled") == GIVE_UP_AFTER
        assert not g.answering()  # the daemon stops its watchdog pings: systemd restarts it
        assert waited(opener(folder / "stall"), WAIT_S) < 0.5  # and nothing waits any more
    finally:
        stuck.release.set()
        g.stop()


# -- the warden ----------------------------------------------------------------------------

@pytest.fixture
def warden_gate(folder: Path) -> Iterator[tuple[Pulse, Warden, Fanotify]]:
    """A gate group nobody reads (the daemon "stopped"), handed to a warden."""
    pulse = Pulse.create(1.0)
    warden = Warden(pulse)
    fan = Fanotify(gate=True)
    fan.watch_dir(str(folder))
    warden.start()
    assert warden.hand(fan.fileno())
    yield pulse, warden, fan
    warden.stop()
    fan.close()
    pulse.close()


def test_the_warden_answers_for_a_daemon_that_does_not(
        folder: Path, warden_gate: tuple[Pulse, Warden, Fanotify]) -> None:
    pulse, warden, _ = warden_gate
    seconds = waited(opener(folder / "target"), pulse.bound_s + SLACK_S + WAIT_S)
    assert seconds <= pulse.bound_s + SLACK_S
    assert pulse.released >= 1
    assert warden.alive()


def test_the_warden_leaves_a_live_gate_alone(
        folder: Path, warden_gate: tuple[Pulse, Warden, Fanotify]) -> None:
    """The twin: while the gate's pulse is fresh (a slow judgement, not a stall) the warden
    does not answer; once the pulse stops, it does."""
    pulse, _, fan = warden_gate
    beating = threading.Event()
    beating.set()

    def beat() -> None:
        while beating.is_set():
            pulse.beat(True)
            time.sleep(0.05)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    held = opener(folder / "target")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            held.wait(timeout=pulse.bound_s * 2.5)
        assert pulse.released == 0 and fan.pending()
    finally:
        beating.clear()
        t.join()
    assert waited(held, pulse.bound_s + SLACK_S + WAIT_S) > pulse.bound_s
    assert pulse.released >= 1


def test_the_warden_ends_with_its_daemon(
        folder: Path, warden_gate: tuple[Pulse, Warden, Fanotify]) -> None:
    _, warden, _ = warden_gate
    assert warden.proc is not None
    warden.stop()
    assert warden.proc.returncode == 0
    assert not warden.alive()
