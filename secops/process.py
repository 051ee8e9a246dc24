"""The one place where secops runs external programs.

argv lists only (never a shell), an explicit minimal environment, a timeout on every call,
stderr captured for classification.  stdout can be streamed line by line so that restic's
``--json`` status messages are never accumulated in memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from secops.errors import OperationalError, Stalled, ToolMissing

INSTALL_HINTS = {
    "restic": "install it: apt-get install restic (Debian/Ubuntu), or see restic.net",
    "gpg": "install it: apt-get install gnupg",
    "rclone": "install it: apt-get install rclone",
    "ssh": "install it: apt-get install openssh-client",
}


INTERRUPT_GRACE_S = 5.0  # after SIGINT at a timeout or a stall, before SIGKILL
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()


def interrupt_all() -> int:
    """SIGINT every running child's process group (restic then removes its lock)."""
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGINT)
    return len(procs)


@contextlib.contextmanager
def tracked(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """``proc`` (a session leader) is among the children :func:`interrupt_all` reaches."""
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


def base_env(home: Path | None = None) -> dict[str, str]:
    """A minimal environment: a sane PATH, a UTF-8 locale, and an explicit HOME."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home) if home else os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),  # noqa: S108 - the system default
    }


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], object] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    stall_timeout: float | None = None,
) -> Completed:
    """Run ``argv`` to completion. With ``on_line`` stdout is streamed, not kept.

    With ``stall_timeout`` (and ``on_line``), a line for which ``on_line`` returns true is
    progress, and a run with no progress for that long is stopped (:class:`Stalled`): a
    program that waits forever on a server that accepts connections and never answers.
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError:
            tool = Path(argv[0]).name
            raise ToolMissing(
                f"{tool} is not installed (or not on PATH)",
                hint=INSTALL_HINTS.get(tool),
            ) from None
        except PermissionError as e:
            raise OperationalError(f"cannot run {argv[0]}: {e.strerror}") from None
        guard = _Guard(proc, start + timeout, stall_timeout if on_line is not None else None)
        lines = on_line if on_line is None or stall_timeout is None else \
            guard.watching(on_line)
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            out = _collect(proc, stdin, lines)
            proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            guard.finish()
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    duration = time.monotonic() - start
    tool = Path(argv[0]).name
    if guard.why == "stalled":
        raise Stalled(f"{tool} made no progress for {stall_timeout:.0f} s and was stopped "
                      f"(after {duration:.0f} s)")
    if guard.why == "timeout":
        raise OperationalError(f"{tool} did not finish within {timeout:.0f} s and was stopped")
    return Completed(tuple(argv), proc.returncode, out, stderr, duration)


class _Guard:
    """A thread that stops ``proc`` at its deadline, or when it has made no progress for
    ``stall`` seconds; ``why`` says which."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float,
                 stall: float | None) -> None:
        self.proc = proc
        self.deadline = deadline
        self.stall = stall
        self.last = time.monotonic()
        self.why: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="secops-process-guard",
                                        daemon=True)
        self._thread.start()

    def watching(self, on_line: Callable[[str], object]) -> Callable[[str], None]:
        """``on_line``, each line it calls progress counted as such."""
        def feed(line: str) -> None:
            if on_line(line):
                self.last = time.monotonic()
        return feed

    def finish(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            until = self.deadline if self.stall is None else \
                min(self.deadline, self.last + self.stall)
            if self._done.wait(max(0.0, min(until - now, 1.0))):
                return
            now = time.monotonic()
            if now >= self.deadline:
                self.why = "timeout"
            elif self.stall is not None and now - self.last >= self.stall:
                self.why = "stalled"
            else:
                continue
            # SIGINT first: restic then removes its lock (a SIGKILLed one leaves it behind,
            # and a plain `restic check` refuses the repository); SIGKILL if it does not end
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGINT)
            if not self._done.wait(INTERRUPT_GRACE_S):
                _kill_group(self.proc)
            return


def _collect(
    proc: subprocess.Popen[bytes], stdin: bytes | None, on_line: Callable[[str], object] | None
) -> str:
    assert proc.stdout is not None
    if stdin is not None:
        assert proc.stdin is not None
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
        feeder.start()
    if on_line is None:
        return proc.stdout.read().decode("utf-8", "replace")
    for raw in proc.stdout:
        on_line(raw.decode("utf-8", "replace"))
    return ""


def _feed(pipe: object, data: bytes) -> None:
    import io

    assert isinstance(pipe, io.BufferedWriter)
    try:
        pipe.write(data)
        pipe.close()
    except BrokenPipeError:
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
