"""The warden: the open gate never hangs honest programs, even when the daemon stops.

A fanotify permission event waits until somebody answers it. If the daemon stops as a whole
(SIGSTOP, a debugger, the cgroup freezer, an interpreter that cannot run its threads), every
open in a watched folder would wait with it (fapolicyd issues #305, #342). The warden is a
separate small process (standard library only, a few MB) that holds a duplicate of the gate's
fanotify descriptor and reads the gate thread's *pulse* in shared memory (:class:`Pulse`):

- while the pulse is fresh it does nothing but wake ten times a second;
- once the gate has made no progress for the bound (``BOUND_S`` of :mod:`secops.fim.gate`,
  2 s) while an event is waiting (one being judged, or one queued), it answers ALLOW: first
  every event the daemon has read but not answered (a response names its event by the
  descriptor number the daemon received, so the warden tries every number open in the
  daemon: a wrong one is refused with ENOENT and does nothing), then every queued event. It
  goes on doing so while the pulse stays stale: fail-open, logged, and counted in the shared
  memory for the daemon to report once it runs again.

It exits when the daemon goes (its socket closes; PR_SET_PDEATHSIG kills it even when it is
stopped itself), so its duplicate never keeps the group alive: the kernel then allows what is
pending. The daemon hands it each new gate group over the socket (SCM_RIGHTS); the warden
closes the one before (``drop``: no gate any more).

Started by :class:`Warden` as ``python -I -S warden.py DAEMON_PID SOCKET_FD PULSE_FD``.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

LAYOUT = struct.Struct("=qqqq")  # progress_ns (CLOCK_MONOTONIC), busy, bound_ns, released
_BEAT = struct.Struct("=qq")
_RELEASED_AT = 24
TICK_MS = 100
PR_SET_PDEATHSIG = 1
FAN_ALLOW = 0x01
PERM_EVENTS = 0x00010000 | 0x00020000 | 0x00040000  # open, access, open_exec permission
_META = struct.Struct("=IBBHQii")
_RESPONSE = struct.Struct("=iI")


class Pulse:
    """The gate thread's sign of life, in a memfd shared with the warden.

    The gate thread calls :meth:`beat` whenever it comes back from the kernel and after every
    event it answers; ``busy`` says an event is being judged right now.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._mem = mmap.mmap(fd, LAYOUT.size)

    @classmethod
    def create(cls, bound_s: float) -> Pulse:
        fd = os.memfd_create("secops-gate-pulse", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, LAYOUT.size)
            pulse = cls(fd)
        except BaseException:
            os.close(fd)
            raise
        LAYOUT.pack_into(pulse._mem, 0, time.monotonic_ns(), 0, round(bound_s * 1e9), 0)
        return pulse

    def beat(self, busy: bool) -> None:
        _BEAT.pack_into(self._mem, 0, time.monotonic_ns(), 1 if busy else 0)

    def read(self) -> tuple[int, int, int, int]:
        progress, busy, bound, released = LAYOUT.unpack_from(self._mem, 0)
        return progress, busy, bound, released

    def age_s(self) -> float:
        return (time.monotonic_ns() - self.read()[0]) / 1e9

    @property
    def bound_s(self) -> float:
        return self.read()[2] / 1e9

    @property
    def released(self) -> int:
        return self.read()[3]

    def add_released(self, n: int) -> None:
        struct.pack_into("=q", self._mem, _RELEASED_AT, self.released + n)

    def stalled(self, group: int) -> bool:
        """No progress for longer than the bound while an event waits on ``group``."""
        progress, busy, bound, _ = self.read()
        if time.monotonic_ns() - progress <= bound:
            return False
        return bool(busy) or queued(group)

    def close(self) -> None:
        self._mem.close()
        os.close(self.fd)


def queued(group: int) -> bool:
    poller = select.poll()
    poller.register(group, select.POLLIN)
    return bool(poller.poll(0))


class Warden:
    """The daemon's side: start the child, hand it each gate group, stop it."""

    def __init__(self, pulse: Pulse) -> None:
        self.pulse = pulse
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # our own child, not an external program: no output to capture, no timeout
            # (it lives as long as the gate); an empty environment; -I -S: no site, no
            # PYTHON* variables, nothing imported but the standard library
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, str(os.getpid()), str(theirs.fileno()),
                 str(self.pulse.fd)],
                pass_fds=(theirs.fileno(), self.pulse.fd), stdin=subprocess.DEVNULL,
                env={}, close_fds=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours

    def hand(self, group: int) -> bool:
        """The gate group the warden answers for from now on; False when it is gone."""
        if self._sock is None:
            return False
        try:
            socket.send_fds(self._sock, [b"gate"], [group])
        except OSError:
            return False
        return True

    def drop(self) -> None:
        """No gate any more: let go of the last one (else it would keep the group alive)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(b"drop")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(b"stop")
            sock.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the child -------------------------------------------------------------------------------

def _log(level: str, message: str) -> None:
    """One line on stderr (the daemon's: journald under systemd), like the daemon's own."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.suppress(OSError):
        sys.stderr.write(f"{stamp} {level:<7} secops-warden: {message}\n")
        sys.stderr.flush()


def _die_with(daemon: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != daemon:  # the daemon went before the line above took effect
        sys.exit(0)


def release(group: int, daemon: int) -> int:
    """Answer ALLOW to everything pending on ``group``; how many opens that let through."""
    allowed = 0
    try:
        numbers = [int(n) for n in os.listdir(f"/proc/{daemon}/fd")]
    except (OSError, ValueError):
        numbers = []
    for number in numbers:  # events the daemon has read but not answered
        with contextlib.suppress(OSError):
            os.write(group, _RESPONSE.pack(number, FAN_ALLOW))
            allowed += 1
    while True:  # events nobody has read yet
        try:
            buf = os.read(group, 4096)
        except OSError:  # BlockingIOError: the queue is empty
            return allowed
        allowed += _allow_all(group, buf)


def _allow_all(group: int, buf: bytes) -> int:
    allowed, off = 0, 0
    while off + _META.size <= len(buf):
        event_len, _, _, _, mask, fd, _ = _META.unpack_from(buf, off)
        off += max(event_len, _META.size)
        if fd < 0:
            continue
        try:
            if mask & PERM_EVENTS:
                os.write(group, _RESPONSE.pack(fd, FAN_ALLOW))
                allowed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return allowed


class _Watch:
    """The child's state: the current group, and the stall being handled, if any."""

    def __init__(self, daemon: int, pulse: Pulse) -> None:
        self.daemon = daemon
        self.pulse = pulse
        self.group = -1
        self.since: float | None = None
        self.allowed = 0

    def take(self, fds: list[int]) -> None:
        if self.group >= 0:
            os.close(self.group)
        self.group = fds[0] if fds else -1
        for extra in fds[1:]:
            os.close(extra)

    def check(self) -> None:
        if self.group < 0:
            return
        if self.pulse.stalled(self.group):
            if self.since is None:
                self.since = time.monotonic()
                _log("WARNING", f"the open gate of daemon pid {self.daemon} has not answered "
                     f"for {self.pulse.age_s():.1f} s (stopped or stuck): allowing the "
                     "pending opens (fail-open) until it answers again")
            n = release(self.group, self.daemon)
            self.allowed += n
            self.pulse.add_released(n)
        elif self.since is not None and self.pulse.age_s() <= self.pulse.bound_s:
            _log("INFO", f"the open gate answers again; {self.allowed} open(s) allowed "
                 f"without it over {time.monotonic() - self.since:.1f} s")
            self.since, self.allowed = None, 0


def main(argv: list[str]) -> int:
    daemon, sock_fd, pulse_fd = (int(a) for a in argv[1:4])
    _die_with(daemon)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the daemon, which stops us
    sock = socket.socket(fileno=sock_fd)
    watch = _Watch(daemon, Pulse(pulse_fd))
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        if poller.poll(TICK_MS):
            try:
                msg, fds, _, _ = socket.recv_fds(sock, 64, 4)
            except OSError:
                return 0
            if not msg or msg == b"stop":  # the daemon closed its end, or asked
                return 0
            if msg == b"gate":
                watch.take(fds)
            elif msg == b"drop":
                watch.take([])
        watch.check()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
