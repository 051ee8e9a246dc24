"""The open gate against an attacker-minded reviewer (issue 12, item 5): it never stops or
refuses silently, never refuses an honest program, never hangs one.

The daemon is the real one (``tests/integration/daemon.py``), the attackers and bystanders are
real processes (``gatesim.py``), the kernel is real (root). Every "must refuse / stop /
detect" has its untouched twin next to it. Waits are on conditions, with generous deadlines;
the only measured durations are the ones the tests are about (how long an open waits).

These tests talk to secops only through its CLI and the daemon's behaviour, so they run
unchanged against an older checkout (how they were first seen to fail).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.corpus import make_corpus
from integration.daemon import Daemon, wait_for
from integration.detection import proc_state, settled
from integration.office import QUIET_SCHEDULE, Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

GATESIM = Path(__file__).with_name("gatesim.py")
TESTS = Path(__file__).parents[1]
BOUND_S = 2.0  # the gate's documented bound (docs/ARCHITECTURE.md, "The integrity monitor")
SLACK_S = 3.0  # scheduling on a loaded two-core machine
WAIT_S = 60.0
FAST = "debounce_seconds = 1\nmax_delay_seconds = 10"
TIMED_OPEN = """
import sys, time
t = time.monotonic()
try:
    with open(sys.argv[1], "rb") as f:
        f.read(1)
    result = "ok"
except OSError as e:
    result = str(e.errno)
print(result, time.monotonic() - t)
"""


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        reason = "the open gate needs root (fanotify, SIGSTOP, chattr)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: missing prerequisites fail instead of skipping)")
        pytest.skip(reason)


def make_office(tmp_path: Path, corpus: bool = True) -> Office:
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=FAST, tail=QUIET_SCHEDULE)
    if corpus:
        make_corpus(office.data, n=300, seed=7)
    office.write()
    assert office.run("init").code == 0
    return office


def alerts(office: Office) -> list[dict[str, Any]]:
    return list(office.run("status", "--json").json()["alerts"])


def kinds(office: Office) -> list[str]:
    return [a["kind"] for a in alerts(office)]


def suspected(office: Office) -> list[dict[str, Any]]:
    return [a for a in alerts(office) if a["kind"] == "ransomware.suspected"]


def named(alert: dict[str, Any]) -> list[int]:
    return [int(p["pid"]) for p in alert["details"]["processes"]]




def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def voter_list(office: Office) -> Path:
    return sorted((office.data / "danh-sach-cu-tri").rglob("*.csv"))[-1]


def unfreeze(office: Office, how: str) -> dict[str, Any]:
    done = office.run("unfreeze", f"--{how}", "--json")
    assert done.code == 0, done.err
    doc: dict[str, Any] = done.json()
    return doc


def timed_open(path: Path, timeout: float = WAIT_S) -> tuple[str, float]:
    """A plain open() and read of ``path`` by another process: (ok | errno, seconds)."""
    out = subprocess.run([sys.executable, "-c", TIMED_OPEN, str(path)], capture_output=True,
                         text=True, timeout=timeout, check=True).stdout.split()
    return out[0], float(out[1])


class Procs:
    """Every process a test starts; killed (and continued) at the end whatever happened."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def sim(self, office: Office, mode: str, out: Path, *args: object,
            data: Path | None = None) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, str(GATESIM), mode, "--dir", str(data or office.data),
             "--out", str(out), *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, cwd="/")
        self.started.append(p)
        return p

    def at_pid(self, pid: int, argv: list[str]) -> subprocess.Popen[str]:
        """Start ``argv`` as process ``pid`` (the kernel hands out pids in order; tell it
        which one was handed out last). Other processes on the machine may take it first:
        tried until it works."""
        last = Path("/proc/sys/kernel/ns_last_pid")
        for _ in range(200):
            last.write_text(str(pid - 1))
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, text=True, cwd="/")
            if p.pid == pid:
                self.started.append(p)
                return p
            p.kill()
            p.wait()
        pytest.fail(f"could not start a process as pid {pid}")

    def end(self) -> None:
        for p in self.started:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGKILL)
                p.wait(10)


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    p.end()


def run_daemon(office: Office) -> Daemon:
    d = Daemon(office).start()
    wait_for(lambda: "fanotify: writer pids and the open gate are on" in d.log(), 60,
             "the integrity monitor with fanotify")
    wait_for(lambda: settled(office), 90, "the first backup")
    return d


def tidy(office: Office, d: Daemon) -> None:
    with contextlib.suppress(Exception):
        d.signal(signal.SIGCONT)
    d.stop()
    if office.run("unfreeze", "--kill", "--json").code != 0:
        subprocess.run(["chattr", "-R", "-i", str(office.data)], check=False,
                       capture_output=True)


@pytest.fixture
def office(tmp_path: Path) -> Office:
    return make_office(tmp_path)


@pytest.fixture
def daemon(office: Office) -> Iterator[Daemon]:
    d = run_daemon(office)
    yield d
    tidy(office, d)


def stopped(p: subprocess.Popen[str]) -> bool:
    return proc_state(p.pid) == "T"


def wait_stopped(p: subprocess.Popen[str], what: str) -> None:
    wait_for(lambda: stopped(p) or p.poll() is not None, WAIT_S, what)
    assert stopped(p), f"{what}: the process ended instead (exit {p.returncode})"


# -- a. only the processes actually stopped, and only while they live ----------------------

def test_a_recycled_pid_of_a_stopped_attacker_reads_like_anyone(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    attacker = procs.sim(office, "encrypt", tmp_path / "a.log", "--only", ".csv",
                         "--count", 20, "--seed", 3)
    wait_stopped(attacker, "the attacker stopped by the gate")
    wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the freeze")
    pid = attacker.pid
    attacker.kill()  # its own parent ends it; the freeze stays, the pid is free again
    attacker.wait(10)
    out = tmp_path / "reader.log"
    reader = procs.at_pid(pid, [sys.executable, str(GATESIM), "read", "--dir", "/",
                                "--out", str(out), "--probe", str(voter_list(office))])
    reader.communicate("go\n", timeout=WAIT_S)
    assert lines(out) == ["probe ok"], "an honest process with a recycled pid was refused"


def test_the_stopped_attacker_continued_by_an_accomplice_is_still_refused(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    """The twin: the very process that was stopped, sent SIGCONT by somebody else (not by
    unfreeze), is refused even a read while its freeze lasts."""
    out = tmp_path / "a.log"
    attacker = procs.sim(office, "encrypt", out, "--only", ".csv", "--count", 3,
                         "--probe", voter_list(office), "--stop", tmp_path / "stop")
    wait_stopped(attacker, "the attacker stopped by the gate")
    seen = len(lines(out))
    os.kill(attacker.pid, signal.SIGCONT)
    wait_for(lambda: sum(x.startswith("probe") for x in lines(out)[seen:]) >= 3, WAIT_S,
             "the attacker's reads after its accomplice's SIGCONT")
    probes = [x for x in lines(out)[seen:] if x.startswith("probe")]
    assert set(probes) == {"probe EPERM"}, probes


def test_the_daemons_parent_is_alarmed_on_but_never_refused(
        office: Office, daemon: Daemon) -> None:
    """The daemon never stops its own parent (here: this test); it was refused every open
    anyway, with no alarm (bench/daemon_bench.py --only storm)."""
    victims = sorted((office.data / "danh-sach-cu-tri").rglob("*.csv"))[:4]
    for path in victims:  # ransomware-like writes by the daemon's parent
        try:
            path.write_bytes(os.urandom(path.stat().st_size))
        except PermissionError:
            break  # refused (or frozen): stop writing, as the attacker would
    wait_for(lambda: bool(suspected(office)), WAIT_S, "the alarm")
    assert os.getpid() in named(suspected(office)[0])
    assert voter_list(office).read_bytes(), "the daemon's parent was refused a read"


# -- b. every stop raises an alarm and is recorded in a freeze that unfreeze releases --------

def test_a_second_attacker_on_the_same_files_after_unfreeze_is_alarmed_and_released(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    originals = {p: p.read_bytes() for p in office.data.rglob("*.csv")}
    first = procs.sim(office, "encrypt", tmp_path / "1.log", "--only", ".csv",
                      "--count", 20, "--seed", 5)
    wait_stopped(first, "the first attacker stopped")
    wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the first freeze")
    assert unfreeze(office, "kill")["processes"] == [{"pid": first.pid, "result": "killed"}]
    first.wait(10)
    # the office restores the damaged files; the daemon backs them up
    backups = daemon.count("backup.completed")
    for line in lines(tmp_path / "1.log"):
        if line.startswith("done "):
            path = Path(line.split(" ", 1)[1])
            path.write_bytes(originals[path])
    wait_for(lambda: daemon.count("backup.completed") > backups and settled(office), 90,
             "the backup of the restored files")

    second = procs.sim(office, "encrypt", tmp_path / "2.log", "--only", ".csv",
                       "--count", 20, "--seed", 5)
    wait_stopped(second, "the second attacker stopped")
    wait_for(lambda: len(suspected(office)) >= 2, WAIT_S, "an alarm for the second attacker")
    assert second.pid in named(suspected(office)[0])  # newest first
    assert kinds(office).count("integrity.frozen") == 2
    released = unfreeze(office, "kill")["processes"]
    assert {"pid": second.pid, "result": "killed"} in released
    assert second.wait(10) == -signal.SIGKILL


def test_a_process_stopped_while_the_freeze_is_being_made_is_recorded_and_released(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    # another secops process holds the freeze lock for a while (a CLI or playbook freeze)
    lock = os.open(office.state / "freeze.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        one = procs.sim(office, "encrypt", tmp_path / "1.log", "--only", ".csv",
                        "--count", 20, "--seed", 1)
        wait_stopped(one, "the first attacker stopped")
        two = procs.sim(office, "encrypt", tmp_path / "2.log", "--only", ".csv",
                        "--count", 20, "--seed", 2)
        wait_stopped(two, "the second attacker stopped")
    finally:
        os.close(lock)
    wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the freeze")
    wait_for(lambda: any(two.pid in named(a) for a in suspected(office)), WAIT_S,
             "an alarm naming the second attacker")
    released = unfreeze(office, "kill")["processes"]
    assert {"pid": one.pid, "result": "killed"} in released
    assert {"pid": two.pid, "result": "killed"} in released
    assert two.wait(10) == -signal.SIGKILL


def test_a_program_resumed_by_unfreeze_opens_files_at_once(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    """A false alarm: ``unfreeze --resume``, and the program's very next reads work (not
    one daemon tick later). Its twin is the accomplice's SIGCONT above: refused."""
    out = tmp_path / "a.log"
    program = procs.sim(office, "encrypt", out, "--only", ".csv", "--count", 3,
                        "--probe", voter_list(office), "--stop", tmp_path / "stop")
    wait_stopped(program, "the program stopped by the gate")
    wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the freeze")
    seen = len(lines(out))
    assert unfreeze(office, "resume")["processes"] == [
        {"pid": program.pid, "result": "resumed"}]
    wait_for(lambda: sum(x.startswith("probe") for x in lines(out)[seen:]) >= 3, WAIT_S,
             "the program's reads after the unfreeze")
    probes = [x for x in lines(out)[seen:] if x.startswith("probe")]
    assert set(probes) == {"probe ok"}, probes
    assert kinds(office).count("integrity.frozen") == 1  # not stopped again once resumed


# -- c. new folders, hard links --------------------------------------------------------------

def test_files_moved_into_a_new_folder_and_encrypted_there_are_contained(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    out = tmp_path / "a.log"
    attacker = procs.sim(office, "move-encrypt", out, "--into", office.data / "luu-tam",
                         "--count", 60, "--seed", 4)
    wait_stopped(attacker, "the attacker stopped")
    encrypted = [x for x in lines(out) if x.startswith("done ")]
    assert len(encrypted) <= 5, f"{len(encrypted)} of 60 files encrypted in the new folder"
    wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the freeze")


def test_a_benign_program_filling_a_new_folder_is_left_alone(
        office: Office, daemon: Daemon, tmp_path: Path) -> None:
    """The twin: 150 scans imported into a new folder by another process."""
    code = ("import sys; from pathlib import Path; from integration.benign import "
            "import_scans; import_scans(Path(sys.argv[1]), n=150)")
    backups = daemon.count("backup.completed")
    subprocess.run([sys.executable, "-c", code, str(office.data / "scan" / "dot-moi")],
                   env={**os.environ, "PYTHONPATH": str(TESTS)}, check=True, timeout=120)
    wait_for(lambda: daemon.count("backup.completed") > backups and settled(office), 90,
             "the backup of the scans")
    assert "ransomware.suspected" not in kinds(office)
    assert "integrity.frozen" not in kinds(office)


@pytest.mark.parametrize("mode", ["link-encrypt", "link-unlink-encrypt"])
def test_writes_through_a_hard_link_from_outside_the_tree_are_contained(
        mode: str, office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    """link-unlink-encrypt removes each link before it writes: by the time the close is
    reported the file has its one watched name again (a CI run under load met this race
    with link, write, unlink: 89 files damaged)."""
    links = tmp_path / "links"  # the same filesystem, outside the watched folder
    links.mkdir()
    out = tmp_path / "a.log"
    attacker = procs.sim(office, mode, out, "--into", links, "--count", 30, "--seed", 6)
    wait_stopped(attacker, "the attacker stopped")
    encrypted = [x for x in lines(out) if x.startswith("done ")]
    # opens outside the watched folders are not gated: the sentry judges these writes while
    # the attacker goes on, so it gets a few files more than through the gate
    assert len(encrypted) <= 10, f"{len(encrypted)} of 30 files encrypted through hard links"


@pytest.mark.parametrize("mode", ["link-encrypt", "link-unlink-encrypt"])
def test_writes_through_hard_links_to_unwatched_files_are_not_judged(
        mode: str, office: Office, daemon: Daemon, tmp_path: Path) -> None:
    """The twin: the same programs on files that are not the office's."""
    other, links = tmp_path / "other", tmp_path / "links"
    other.mkdir()
    links.mkdir()
    for i in range(30):
        (other / f"{i:03d}.csv").write_text("STT,Họ và tên\n" * 200, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(GATESIM), mode, "--dir", str(other), "--out",
         str(tmp_path / "a.log"), "--into", str(links), "--count", "30"],
        check=False, timeout=120)
    assert done.returncode == 0
    assert sum(x.startswith("done ") for x in lines(tmp_path / "a.log")) == 30
    # a sentinel write in the watched folder: once it is backed up, anything the links
    # could have raised would have been seen
    backups = daemon.count("backup.completed")
    (office.data / "scan" / "sentinel.txt").write_text("ok")
    wait_for(lambda: daemon.count("backup.completed") > backups and settled(office), 90,
             "the backup of the sentinel")
    assert "ransomware.suspected" not in kinds(office)


# -- c'. descriptors opened before the alarm ----------------------------------------------

HELD_BOUND = 5  # of 300 documents damaged (measured: 3, the files of the alarm itself)
GUARDIAN = """
import os, signal, sys, time
pid, out = int(sys.argv[1]), sys.argv[2]
while True:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        break
    if state == "T":  # the test process stopped: say so, and let it go on to fail
        with open(out, "a") as f:
            f.write("stopped\\n")
        os.kill(pid, signal.SIGCONT)
    time.sleep(0.05)
"""


def contents(office: Office) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in office.data.rglob("*")
            if p.suffix in (".docx", ".xlsx", ".pdf", ".jpg", ".csv")
            and "secops-canary" not in p.name}


def changed(before: dict[Path, bytes]) -> int:
    return sum(1 for p, data in before.items() if p.read_bytes() != data)


def test_writers_that_opened_every_file_before_the_alarm_are_stopped(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    """Red team D: open every file read-write first, then encrypt through the descriptors
    (the gate judges opens only, ``chattr +i`` does not stop a descriptor opened before it):
    27 of 27 and 134 of 159 files damaged, writes went on after the freeze. Every process
    holding a file under the watched folders open for writing is stopped at the freeze:
    containment's contract, the honest bystander included; never the daemon or its parent."""
    bystander = procs.sim(office, "hold", tmp_path / "h.log", "--probe",
                          office.data / "nhat-ky.log", "--stop", tmp_path / "stop")
    wait_for(lambda: len(lines(tmp_path / "h.log")) >= 3, WAIT_S, "the bystander's lines")
    guard_log = tmp_path / "guardian.log"
    guardian = subprocess.Popen([sys.executable, "-c", GUARDIAN, str(os.getpid()),
                                 str(guard_log)], text=True)
    procs.started.append(guardian)
    # the daemon's parent (this test) holds a file under the watched folder open for writing
    mine = os.open(office.data / "cua-nguoi-chay.log", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        before = contents(office)
        out = tmp_path / "a.log"
        attacker = procs.sim(office, "held-encrypt", out, "--count", 300, "--seed", 9,
                             "--workers", 4, "--delay", 0.05)
        wait_for(lambda: "integrity.frozen" in kinds(office) or attacker.poll() is not None,
                 WAIT_S, "the freeze")
        assert attacker.poll() is None, f"the attacker finished: {changed(before)} damaged"
        family = [int(x) for line in lines(out) if line.startswith("workers ")
                  for x in line.split()[1:]]
        assert len(family) == 4
        states = {p: proc_state(p) for p in family}
        assert set(states.values()) == {"T"}, f"not stopped: {states}"
        time.sleep(1.0)  # anything still in flight lands now
        damaged = changed(before)
        time.sleep(2.0)
        assert changed(before) == damaged, "writes went on after the freeze"
        print(f"\nheld descriptors: {damaged} of {len(before)} documents damaged")
        assert damaged <= HELD_BOUND, damaged
        assert stopped(bystander)  # a real alarm stops every writer under the folders
        assert daemon.proc is not None and proc_state(daemon.proc.pid) != "T"
        assert not guard_log.exists(), "the daemon stopped its own parent"
        recorded = {p["pid"] for a in alerts(office) if a["kind"] == "integrity.frozen"
                    for p in a["details"]["processes"] if p.get("stopped")}
        assert {*family, bystander.pid} <= recorded, recorded
        assert os.getpid() not in recorded
        released = unfreeze(office, "kill")["processes"]
        killed = {p["pid"] for p in released if p["result"] == "killed"}
        assert {*family, bystander.pid} <= killed, released
        assert attacker.wait(10) == 0  # its workers were killed; it holds no file itself
    finally:
        os.close(mine)


def test_without_an_alarm_no_writer_holding_files_open_is_stopped(
        office: Office, daemon: Daemon, procs: Procs, tmp_path: Path) -> None:
    """The twin: a program of the same shape that writes back what it read (a sync tool),
    and the bystander appending to its journal: no alarm, nobody stopped."""
    bystander = procs.sim(office, "hold", tmp_path / "h.log", "--probe",
                          office.data / "nhat-ky.log", "--stop", tmp_path / "stop")
    out = tmp_path / "s.log"
    tool = procs.sim(office, "held-encrypt", out, "--count", 300, "--seed", 9,
                     "--workers", 4, "--delay", 0.01, "--same")
    wait_for(lambda: "finished" in lines(out), WAIT_S, "the sync tool to finish")
    assert tool.wait(10) == 0
    assert sum(x.startswith("done ") for x in lines(out)) == 300
    assert not stopped(bystander) and bystander.poll() is None
    (tmp_path / "stop").touch()
    assert bystander.wait(WAIT_S) == 0  # it ran to its end: never stopped
    # a sentinel write: once it is backed up, the monitor has judged everything before it
    backups = daemon.count("backup.completed")
    (office.data / "scan" / "sentinel.txt").write_text("ok")
    wait_for(lambda: daemon.count("backup.completed") > backups and settled(office), 90,
             "the backup of the sentinel")
    seen = kinds(office)
    assert "ransomware.suspected" not in seen and "integrity.frozen" not in seen


# -- d. a stopped daemon never hangs an open beyond the bound --------------------------------

def test_a_stopped_daemon_delays_an_open_by_at_most_the_bound(
        office: Office, daemon: Daemon) -> None:
    target = voter_list(office)
    result, waited = timed_open(target)
    assert (result, waited < 0.5) == ("ok", True), "a running daemon answers at once"
    assert daemon.proc is not None
    daemon.signal(signal.SIGSTOP)
    try:
        result, waited = timed_open(target, timeout=BOUND_S + SLACK_S + 10)
    finally:
        daemon.signal(signal.SIGCONT)
    assert result == "ok"
    assert waited <= BOUND_S + SLACK_S, f"the open waited {waited:.1f} s"
    assert waited >= BOUND_S / 2, f"the open did not wait on the gate ({waited:.2f} s)"
    result, waited = timed_open(target)
    assert (result, waited < 0.5) == ("ok", True), "the gate answers at once again"
    wait_for(lambda: any(a["kind"] == "integrity.gate_degraded" and
                         a["details"]["reason"] == "warden_released" for a in alerts(office)),
             WAIT_S, "the report of the opens allowed while the daemon was stopped")


# -- e. descriptors, queue overflows -----------------------------------------------------------

class LowFdDaemon(Daemon):
    """The daemon started with a soft RLIMIT_NOFILE of 64, as systemd's 1024 would be."""

    def start(self) -> Daemon:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        env = {"PATH": os.environ["PATH"], "HOME": str(self.office.root), "LANG": "C.UTF-8"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "secops", "--config", str(self.office.config), "run"],
                stdout=log, stderr=log, env=env,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)))  # noqa: PLW1509
        Daemon.started.append(self)
        wait_for(lambda: "daemon ready" in self.log() or self.proc is None
                 or self.proc.poll() is not None, 30, "the daemon to start")
        assert self.proc.poll() is None, self.log()
        return self


MANY_OPENS = """
import sys, threading
paths = sys.argv[1:]
barrier = threading.Barrier(len(paths))
failed = []
def one(p):
    barrier.wait()
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        failed.append(e.errno)
threads = [threading.Thread(target=one, args=(p,)) for p in paths]
for t in threads: t.start()
for t in threads: t.join()
print(len(failed))
"""


def test_the_gate_is_never_short_of_descriptors(office: Office) -> None:
    d = LowFdDaemon(office).start()
    try:
        wait_for(lambda: "the open gate are on" in d.log(), 60, "the gate")
        assert d.proc is not None
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text().splitlines()
        soft, hard = next(x for x in limits if x.startswith("Max open files")).split()[3:5]
        assert soft == hard, f"the daemon kept a soft limit of {soft} open files"
        files = [p for p in office.data.rglob("*") if p.is_file()][:250]
        done = subprocess.run([sys.executable, "-c", MANY_OPENS, *map(str, files)],
                              capture_output=True, text=True, timeout=120, check=True)
        assert done.stdout.strip() == "0", "opens were refused for want of descriptors"
    finally:
        tidy(office, d)


def test_a_queue_overflow_raises_an_alert(office: Office, daemon: Daemon,
                                          tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/fanotify/max_queued_events").read_text())
    flood = tmp_path / "flood"  # outside the watched folder, on its filesystem
    flood.mkdir()
    code = ("import sys\nfor i in range(int(sys.argv[2])):\n"
            "    open(f'{sys.argv[1]}/{i}', 'w').close()")
    daemon.signal(signal.SIGSTOP)
    try:
        subprocess.run([sys.executable, "-c", code, str(flood), str(limit + 5000)],
                       check=True, timeout=300)
    finally:
        daemon.signal(signal.SIGCONT)
    wait_for(lambda: any(a["kind"] == "integrity.gate_degraded" and
                         "overflow" in a["details"]["reason"] for a in alerts(office)),
             WAIT_S, "the overflow alert")


# -- f. the event storm (bench/daemon_bench.py --only storm) -----------------------------------

def test_random_bytes_are_not_taken_for_openpgp_but_gpg_output_is(tmp_path: Path) -> None:
    """The storm's false alarm: random test data probed as OpenPGP about once in 300 files,
    and text written over it then looked like a change of type."""
    from secops.fim.probe import file_type

    rng = random.Random(12)  # noqa: S311 - test data
    assert [i for i in range(30_000) if file_type(rng.randbytes(4096)) == "pgp"] == []
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    plain = tmp_path / "plain.csv"
    plain.write_text("STT,Họ và tên\n" * 500, encoding="utf-8")
    gpg = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
           "--passphrase", "x"]
    subprocess.run([*gpg, "--quick-gen-key", "t <t@example.org>", "default", "default",
                    "never"], check=True, capture_output=True, timeout=120)
    made = []
    for name, args in {"c": ["-c"], "e": ["-r", "t@example.org", "-e"], "s": ["-s"],
                       "sig": ["-b"], "z": ["--compress-algo", "zlib", "-s"],
                       "n": ["--compress-algo", "none", "-s"]}.items():
        out = tmp_path / f"plain.{name}.gpg"
        subprocess.run([*gpg, "--trust-model", "always", *args, "-o", str(out), str(plain)],
                       check=True, capture_output=True, timeout=120)
        made.append(out)
    assert {p.name: file_type(p.read_bytes()[:4096]) for p in made} == {
        p.name: "pgp" for p in made}


def test_text_written_over_random_test_data_raises_nothing(tmp_path: Path) -> None:
    """The storm in small: text written by the daemon's parent at the start of each file of
    a tree of random bytes under document names, as bench/daemon_bench.py makes it (about
    one such file in 500 used to probe as OpenPGP: a dozen here)."""
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=FAST, tail=QUIET_SCHEDULE)
    rng = random.Random(3)  # noqa: S311 - test data
    tree = []
    for i in range(6000):
        folder = office.data / f"khu-{i % 30:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        tree.append(folder / f"tep-{i:06d}.{('csv', 'txt', 'docx', 'pdf')[i % 4]}")
        tree[-1].write_bytes(rng.randbytes(rng.randint(1024, 8192)))
    office.write()
    assert office.run("init").code == 0
    d = run_daemon(office)
    try:
        refused = []
        for k, path in enumerate(rng.sample(tree, len(tree))):
            try:
                fd = os.open(path, os.O_WRONLY)
            except OSError as e:
                refused.append((k, str(path), errno.errorcode.get(e.errno or 0)))
                break
            try:
                os.pwrite(fd, f"storm write {k:06d}\n".encode() * 48, 0)
            finally:
                os.close(fd)
        assert refused == []
        backups = d.count("backup.completed")
        wait_for(lambda: d.count("backup.completed") > backups and settled(office), 180,
                 "the backup of the storm")
        assert "ransomware.suspected" not in kinds(office)
    finally:
        tidy(office, d)
