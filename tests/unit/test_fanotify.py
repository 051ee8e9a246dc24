"""The fanotify adapter against the real kernel: who wrote a file, and the gate on opens.

Needs root (CAP_SYS_ADMIN): skipped otherwise, and failed instead under ``CI=true``.  Every
"no event" assertion is closed by a sentinel: a child writes one more file in a marked folder
last, and since the kernel queues events in order, once the sentinel's event is seen any event
the earlier steps could have caused would have been seen too.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from secops.fim.fanotify import (
    ALLOW,
    DENY,
    Event,
    Fanotify,
    FanotifyUnavailable,
    available,
    mark_error,
    unavailable_message,
)

WAIT_S = 10.0  # upper bound for any wait; a passing run waits milliseconds
OPEN_AND_REPORT = """
import errno, sys
try:
    with open(sys.argv[1], "rb") as f:
        print("read", f.read().decode())
except OSError as e:
    print(errno.errorcode[e.errno])
"""
WRITE_FILES = """
import sys
for path in sys.argv[1:]:
    with open(path, "w") as f:
        f.write("from child " + path)
"""


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        reason = "fanotify needs root (CAP_SYS_ADMIN)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: missing prerequisites fail instead of skipping)")
        pytest.skip(reason)


@dataclass(frozen=True)
class Seen:
    kind: str
    pid: int
    path: str
    content: bytes  # read through the event's fd during the callback


class Recorder:
    """An on_event callback that keeps what it saw; ``decide`` answers permission events."""

    def __init__(self, decide: Callable[[Event], bool] | None = None) -> None:
        self.seen: list[Seen] = []
        self._decide = decide
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> bool:
        content = os.pread(event.fd, 1024, 0) if event.fd >= 0 else b""
        with self._cond:
            self.seen.append(Seen(event.kind, event.pid, event.path, content))
            self._cond.notify_all()
        return self._decide(event) if self._decide else ALLOW

    def wait_for(self, kind: str, path: Path | str = "") -> Seen:
        def found() -> Seen | None:
            return next((s for s in self.seen if s.kind == kind and s.path == str(path)), None)

        with self._cond:
            assert self._cond.wait_for(lambda: found() is not None, timeout=WAIT_S), (
                f"no {kind} event for {path!r} within {WAIT_S}s; saw {self.seen}")
            seen = found()
        assert seen is not None
        return seen

    def paths(self) -> set[str]:
        with self._cond:
            return {s.path for s in self.seen}


class Loop:
    """``Fanotify.run()`` in a background thread; keeps what it raised."""

    def __init__(self, fa: Fanotify, on_event: Callable[[Event], bool]) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fa, on_event), daemon=True)
        self.thread.start()

    def _run(self, fa: Fanotify, on_event: Callable[[Event], bool]) -> None:
        try:
            fa.run(on_event, self.stop, poll_s=0.05)
        except BaseException as e:  # handed to the test
            self.error = e

    def join(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "run() did not return"


@contextmanager
def running(fa: Fanotify, on_event: Callable[[Event], bool]) -> Iterator[Loop]:
    loop = Loop(fa, on_event)
    try:
        yield loop
    finally:
        loop.join()
    if loop.error is not None:
        raise loop.error


def child(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    return out.strip()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder to mark, holding ``target`` (made before marking: our own opens are gated too)."""
    path = Path(os.path.realpath(tmp_path)) / "watched"
    path.mkdir()
    (path / "target").write_text("original")
    return path


@pytest.fixture
def fa() -> Iterator[Fanotify]:
    with Fanotify(gate=True) as group:
        yield group


@pytest.mark.parametrize("gate", [True, False])
def test_a_childs_write_reports_its_pid_path_and_content(folder: Path, gate: bool) -> None:
    seen = Recorder()
    new = folder / "new.txt"
    with Fanotify(gate=gate) as fa, running(fa, seen):
        fa.watch_dir(str(folder))
        proc = child(WRITE_FILES, new)
        finish(proc)
        event = seen.wait_for("close_write", new)
    assert event.pid == proc.pid
    assert event.content == f"from child {new}".encode()
    assert ("open_perm" in {s.kind for s in seen.seen}) is gate


def test_our_own_writes_reach_no_callback(fa: Fanotify, folder: Path) -> None:
    seen = Recorder()
    fa.watch_dir(str(folder))
    with running(fa, seen):
        # In a thread: if our own open were not answered it would hang, not fail.
        writer = threading.Thread(target=(folder / "ours.txt").write_text, args=("ours",))
        writer.start()
        writer.join(WAIT_S)
        assert not writer.is_alive(), "our own open was never answered"
        finish(child(WRITE_FILES, folder / "sentinel"))
        seen.wait_for("close_write", folder / "sentinel")
    assert seen.paths() == {str(folder / "sentinel")}
    assert os.getpid() not in {s.pid for s in seen.seen}


@pytest.mark.parametrize(("answer", "expected"), [(DENY, "EPERM"), (ALLOW, "read original")])
def test_the_gate_answers_a_childs_open(
        fa: Fanotify, folder: Path, answer: bool, expected: str) -> None:
    target = str(folder / "target")
    seen = Recorder(lambda e: answer if e.path == target else ALLOW)
    fa.watch_dir(str(folder))
    with running(fa, seen):
        proc = child(OPEN_AND_REPORT, target)
        assert finish(proc) == expected
    event = seen.wait_for("open_perm", target)
    assert (event.pid, event.content) == (proc.pid, b"original")


def test_creating_a_new_file_is_gated_too(fa: Fanotify, folder: Path) -> None:
    # O_CREAT raises open_perm; the kernel creates the file before asking, so a denied
    # create fails with EPERM but leaves an empty file behind.
    new = folder / "new.txt"
    code = ("import sys\ntry:\n    open(sys.argv[1], 'w')\n"
            "except PermissionError as e:\n    print(e.errno)")
    fa.watch_dir(str(folder))
    with running(fa, Recorder(lambda e: DENY)):
        assert finish(child(code, new)) == str(errno.EPERM)
    assert new.stat().st_size == 0


def test_an_exception_in_the_callback_allows_the_open_and_propagates(
        fa: Fanotify, folder: Path) -> None:
    def broken(event: Event) -> bool:
        raise RuntimeError(f"detector bug on {event.path}")

    fa.watch_dir(str(folder))
    loop = Loop(fa, broken)
    try:
        assert finish(child(OPEN_AND_REPORT, folder / "target")) == "read original"
        loop.thread.join(WAIT_S)
        assert not loop.thread.is_alive(), "run() did not propagate the callback's exception"
    finally:
        loop.join()
    assert isinstance(loop.error, RuntimeError)
    assert str(folder / "target") in str(loop.error)


def test_unmarked_folders_and_subfolders_produce_no_events(fa: Fanotify, folder: Path) -> None:
    # Marks are not recursive: the caller has to mark every subfolder itself.
    elsewhere = folder.parent / "unmarked"
    sub = folder / "sub"
    elsewhere.mkdir()
    sub.mkdir()
    seen = Recorder()
    fa.watch_dir(str(folder))
    with running(fa, seen):
        finish(child(WRITE_FILES, elsewhere / "a", sub / "b", folder / "sentinel"))
        seen.wait_for("close_write", folder / "sentinel")
    assert seen.paths() == {str(folder / "sentinel")}


def test_rename_and_unlink_produce_no_events(fa: Fanotify, folder: Path) -> None:
    code = ("import os, sys\nd = sys.argv[1]\nos.rename(d + '/target', d + '/renamed')\n"
            "os.unlink(d + '/renamed')\nos.mkdir(d + '/dir')\nos.listdir(d)\n"
            "open(d + '/sentinel', 'w').close()")
    seen = Recorder()
    fa.watch_dir(str(folder))
    with running(fa, seen):
        finish(child(code, folder))
        seen.wait_for("close_write", folder / "sentinel")
    assert seen.paths() == {str(folder / "sentinel")}


def test_an_unwatched_folder_goes_quiet(fa: Fanotify, folder: Path, tmp_path: Path) -> None:
    other = Path(os.path.realpath(tmp_path)) / "other"
    other.mkdir()
    seen = Recorder()
    fa.watch_dir(str(folder))
    fa.watch_dir(str(other))
    fa.unwatch_dir(str(other))
    fa.unwatch_dir(str(other))  # twice: not an error
    with running(fa, seen):
        finish(child(WRITE_FILES, other / "a", folder / "sentinel"))
        seen.wait_for("close_write", folder / "sentinel")
    assert seen.paths() == {str(folder / "sentinel")}


def test_close_ends_a_running_loop_without_leaking_fds(folder: Path) -> None:
    before = fd_count()
    seen = Recorder()
    fa = Fanotify(gate=True)
    fa.watch_dir(str(folder))
    loop = Loop(fa, seen)
    try:
        finish(child(WRITE_FILES, folder / "a"))
        seen.wait_for("close_write", folder / "a")
        fa.close()  # without setting stop
        loop.thread.join(WAIT_S)
        assert not loop.thread.is_alive(), "run() kept running after close()"
    finally:
        loop.join()
        fa.close()  # idempotent
    assert loop.error is None
    assert fd_count() == before


def test_close_releases_an_open_nobody_answered(fa: Fanotify, folder: Path) -> None:
    fa.watch_dir(str(folder))  # and no run(): the child's open waits on us
    proc = child(OPEN_AND_REPORT, folder / "target")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        fa.close()
        assert finish(proc) == "read original"
    finally:
        proc.kill()
        proc.wait()


def test_a_queue_overflow_is_reported(folder: Path) -> None:
    limit = int(Path("/proc/sys/fs/fanotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"the fanotify queue holds {limit} events; too many to overflow here")
    names = [folder / f"f{i}" for i in range(limit + 10)]
    seen = Recorder()
    with Fanotify(gate=False) as fa:
        fa.watch_dir(str(folder))
        finish(child(WRITE_FILES, *names))  # queued while nobody reads
        with running(fa, seen):
            seen.wait_for("overflow")
            seen.wait_for("close_write", names[limit - 1])
    assert str(names[-1]) not in seen.paths()


def test_available_here() -> None:
    assert available()
    assert available(gate=False)


def test_without_privilege_the_error_says_root_is_needed() -> None:
    code = ("import os\nfrom secops.fim.fanotify import Fanotify, FanotifyUnavailable\n"
            "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "try:\n    Fanotify()\nexcept FanotifyUnavailable as e:\n    print(e.errno, e)")
    out = finish(child(code))
    assert out.startswith(f"{errno.EPERM} ")
    assert "root (CAP_SYS_ADMIN)" in out


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EINVAL])
def test_a_kernel_without_fanotify_is_named(err: int) -> None:
    message, hint = unavailable_message(err, gate=True)
    assert "kernel" in message and "CONFIG_FANOTIFY" in hint
    assert isinstance(FanotifyUnavailable(message, errno_=err, hint=hint), Exception)


def test_watching_a_missing_folder_names_it(fa: Fanotify, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="missing"):
        fa.watch_dir(missing)


def test_the_mark_limit_is_named() -> None:
    error = mark_error(errno.ENOSPC, "/srv/elections")
    assert "max_user_marks" in str(error) and "/srv/elections" in str(error)


# -- filesystem marks, ignore marks, giving a group up ----------------------------------------

def test_a_filesystem_mark_reports_writes_in_folders_nobody_marked(tmp_path: Path) -> None:
    base = Path(os.path.realpath(tmp_path))
    new = base / "new" / "deeper"
    new.mkdir(parents=True)
    seen = Recorder()
    with Fanotify(gate=False) as fa:
        fa.watch_filesystem(str(base))
        with running(fa, seen):
            proc = child(WRITE_FILES, new / "a.txt")
            finish(proc)
            event = seen.wait_for("close_write", new / "a.txt")
    assert event.pid == proc.pid
    with Fanotify(gate=True) as fa, pytest.raises(ValueError, match="filesystems"):
        fa.watch_filesystem(str(base))  # every open on the disk would wait for us


def test_ignored_files_and_folders_produce_no_events(tmp_path: Path) -> None:
    """The daemon's own SQLite files: a descriptor of one, closed by us, would drop our
    POSIX locks on it. An ignored file stays ignored through a hard link too."""
    base = Path(os.path.realpath(tmp_path))
    state, watched = base / "state", base / "watched"
    state.mkdir()
    watched.mkdir()
    db = state / "state.db"
    db.write_text("x")
    os.link(db, watched / "link-to-db")
    seen = Recorder()
    with Fanotify(gate=True) as gate, Fanotify(gate=False) as sentry:
        gate.watch_dir(str(watched))
        sentry.watch_filesystem(str(base))
        for fa in (gate, sentry):
            fa.ignore(str(state))
            fa.ignore(str(db))
        with running(gate, seen), running(sentry, seen):
            finish(child(WRITE_FILES, db, state / "new.txt", watched / "link-to-db",
                         watched / "sentinel"))
            seen.wait_for("close_write", watched / "sentinel")
            seen.wait_for("open_perm", watched / "sentinel")
    # the filesystem mark sees every process on the disk: judge this test's folder only
    assert {s.path for s in seen.seen if s.path.startswith(f"{base}/")} == {
        str(watched / "sentinel")}


def test_abandon_releases_what_a_stuck_callback_holds(fa: Fanotify, folder: Path) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(event: Event) -> bool:
        if event.kind == "open_perm":
            entered.set()
            release.wait(WAIT_S)
        return DENY  # what the stuck thread would say, too late: nobody hears it

    fa.watch_dir(str(folder))
    loop = Loop(fa, stuck)
    proc = child(OPEN_AND_REPORT, folder / "target")
    try:
        assert entered.wait(WAIT_S)
        assert fa.allow_in_flight() >= 1  # the open the stuck thread holds
        fa.abandon()  # and the group itself: the kernel allows the rest
        assert finish(proc) == "read original"
        release.set()
        loop.thread.join(WAIT_S)
        assert not loop.thread.is_alive(), "run() did not return after the callback did"
    finally:
        release.set()
        loop.join()
    assert loop.error is None  # its late answer was refused (ENOENT) and ignored


def test_the_pulse_beats_while_idle_and_while_busy(fa: Fanotify, folder: Path) -> None:
    beats: list[bool] = []

    class Pulse:
        def beat(self, busy: bool) -> None:
            beats.append(busy)

    stop = threading.Event()
    t = threading.Thread(target=fa.run, args=(Recorder(), stop),
                         kwargs={"poll_s": 0.02, "pulse": Pulse()}, daemon=True)
    fa.watch_dir(str(folder))
    t.start()
    try:
        finish(child(OPEN_AND_REPORT, folder / "target"))
        deadline = time.monotonic() + WAIT_S
        while beats.count(False) < 5 or True not in beats:
            assert time.monotonic() < deadline, beats[-20:]
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(WAIT_S)
