"""sd_notify without a systemd library: tell systemd how the daemon is doing.

systemd (``Type=notify``) passes the path of a datagram socket in ``$NOTIFY_SOCKET``; the
daemon sends newline-separated ``KEY=VALUE`` assignments to it (``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ...). A path starting with ``@`` names a socket in the abstract namespace.
Outside systemd (a terminal, the tests) there is no socket and every call returns False, so
the daemon can call these helpers unconditionally.

Sending never raises: a daemon must not die because its supervisor went away. The result
tells the caller whether the datagram was delivered to a socket.

See sd_notify(3) and systemd.service(5) (``WatchdogSec=``, ``NotifyAccess=``).
"""

from __future__ import annotations

import os
import socket
import time

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

_SEND_TIMEOUT_S = 1.0  # systemd reads its notify socket promptly; never block the loop long


def _address() -> str | None:
    """The socket address from ``$NOTIFY_SOCKET``, or None when not under systemd.

    Only AF_UNIX addresses are supported: an absolute path, or ``@name`` for the abstract
    namespace (the ``@`` becomes a NUL byte). Anything else (``vsock:...`` of systemd >= 254,
    a relative path) is treated as "no socket".
    """
    value = os.environ.get(NOTIFY_SOCKET, "")
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def notify(state: str) -> bool:
    """Send ``state`` (one or more ``KEY=VALUE`` lines) to systemd.

    Returns True when the datagram was sent, False when not running under systemd (no or an
    unsupported ``$NOTIFY_SOCKET``) or when the socket could not be reached.
    """
    if not state:
        raise ValueError("sd_notify state must not be empty")
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(_SEND_TIMEOUT_S)
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except (OSError, ValueError):
        # OSError: socket gone, refused, timed out; ValueError: NUL byte in a path.
        return False
    return True


def _one_line(text: str) -> str:
    """``text`` on one line: a newline would start a new (forged) assignment."""
    return " ".join(text.splitlines()).replace("\0", " ")


def ready(status_text: str | None = None) -> bool:
    """Start-up (or a reload) is complete: ``READY=1``, optionally with a status line."""
    if status_text is None:
        return notify("READY=1")
    return notify(f"READY=1\nSTATUS={_one_line(status_text)}")


def status(text: str) -> bool:
    """A free-form one-line status, shown by ``systemctl status secops``."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog() -> bool:
    """Keep-alive ping: the main loop is alive (``WatchdogSec=`` in the unit)."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    """Shutdown has begun (``STOPPING=1``)."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """A configuration reload has begun; send :func:`ready` when it is done.

    ``MONOTONIC_USEC`` (CLOCK_MONOTONIC in microseconds) is required by systemd >= 253 to
    match the message to the reload request; older versions ignore the unknown field.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Seconds between :func:`watchdog` pings, or None when no watchdog is armed for us.

    systemd sets ``$WATCHDOG_USEC`` (the ``WatchdogSec=`` timeout) and ``$WATCHDOG_PID``
    (the process it is meant for). The recommended ping period is half the timeout, so one
    late ping does not get the service killed. A ``$WATCHDOG_PID`` other than ours (the
    variable leaked into a child) or a malformed value means "no watchdog".
    """
    pid = os.environ.get(WATCHDOG_PID)
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(os.environ.get(WATCHDOG_USEC, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000
