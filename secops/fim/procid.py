"""Process identity: a pid together with its start time.

A pid alone names whichever process holds it now: once the process secops stopped exits, the
kernel hands the number to the next process it starts (``kernel.pid_max`` is 32768 on many
systems, so that is soon). The start time, field 22 of ``/proc/PID/stat`` (clock ticks since
boot), tells the two apart: a pid with another start time is another process. (A tick is
10 ms: only a process started within the same tick as the one stopped, with the same pid,
would pass for it; the kernel would have to hand out every other pid in between.)

Signals go through a pidfd opened *before* the start time is checked, so the process that
gets the signal is the one that was checked, never a successor that took the pid in between.
"""

from __future__ import annotations

import errno
import os
import signal

SENT, GONE, REFUSED = "sent", "gone", "refused"


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, None when there is no such process.

    One small read of ``/proc/PID/stat`` (about 10 µs); never blocks on the process itself
    (unlike ``/proc/PID/cmdline``, which waits for the process's memory map lock).
    """
    found = _stat(pid)
    return found[1] if found is not None else None


def exited(pid: int, start: int) -> bool:
    """The process that started at ``start`` has ended: gone, another process under its pid,
    or a zombie (its files are closed; it only waits for its parent to collect it)."""
    found = _stat(pid)
    return found is None or found[1] != start or found[0] in ("Z", "X")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from ``/proc/PID/stat``."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split at the last ")"
    try:
        fields = raw[raw.rindex(b")") + 2:].split()
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (ValueError, IndexError):
        return None


def signal_exact(pid: int, start: int, sig: int) -> str:
    """Send ``sig`` to ``pid`` only if it is still the process that started at ``start``.

    SENT, GONE (exited, or the pid now names another process) or REFUSED (not permitted).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return REFUSED
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        return _signal_by_pid(pid, start, sig)  # a kernel before 5.3: no pidfds
    try:
        if start_time(pid) != start:
            return GONE
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return REFUSED
    finally:
        os.close(pidfd)
    return SENT


def _signal_by_pid(pid: int, start: int, sig: int) -> str:
    if start_time(pid) != start:
        return GONE
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return REFUSED
    return SENT


def stop(pid: int) -> dict[str, object]:
    """SIGSTOP ``pid``; the record secops keeps: pid, start time, whether it was stopped."""
    found = _stat(pid)
    if found is None or found[0] in ("Z", "X"):  # a zombie takes the signal and does nothing
        return {"pid": pid, "stopped": False, "error": "already gone"}
    start = found[1]
    result = signal_exact(pid, start, signal.SIGSTOP)
    if result == SENT:
        return {"pid": pid, "start": start, "stopped": True}
    return {"pid": pid, "start": start, "stopped": False,
            "error": "already gone" if result == GONE else "not permitted"}
