"""sd_notify: real AF_UNIX datagram sockets receive what the daemon tells systemd."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secops.daemon import notify


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever runs the tests (maybe a systemd unit), start outside systemd."""
    for name in (notify.NOTIFY_SOCKET, notify.WATCHDOG_USEC, notify.WATCHDOG_PID):
        monkeypatch.delenv(name, raising=False)


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def path_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound to a file in a temp folder, named in $NOTIFY_SOCKET.

    The folder is short on purpose: socket paths are limited to 107 bytes, and pytest's
    tmp_path can be longer than that.
    """
    with tempfile.TemporaryDirectory(prefix="sdn-") as folder:
        path = str(Path(folder) / "notify.sock")
        with _receiver(path) as sock:
            monkeypatch.setenv(notify.NOTIFY_SOCKET, path)
            yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, named ``@...`` in $NOTIFY_SOCKET."""
    name = f"secops-test-notify-{os.getpid()}-{secrets.token_hex(4)}"
    with _receiver("\0" + name) as sock:
        monkeypatch.setenv(notify.NOTIFY_SOCKET, "@" + name)
        yield sock


def _received(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_not_under_systemd_every_helper_returns_false() -> None:
    assert notify.notify("READY=1") is False
    assert notify.ready() is False
    assert notify.status("x") is False
    assert notify.watchdog() is False
    assert notify.stopping() is False
    assert notify.reloading() is False


@pytest.mark.parametrize("value", ["", "@", "relative/notify.sock", "vsock:2:1234"])
def test_unsupported_socket_address_is_not_systemd(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(notify.NOTIFY_SOCKET, value)
    assert notify.notify("READY=1") is False


def test_missing_socket_file_returns_false(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(notify.NOTIFY_SOCKET, str(tmp_path / "gone.sock"))
    assert notify.ready() is False


def test_empty_state_is_a_programming_error(path_socket: socket.socket) -> None:
    with pytest.raises(ValueError, match="empty"):
        notify.notify("")


def test_ready_reaches_a_path_socket(path_socket: socket.socket) -> None:
    assert notify.ready() is True
    assert _received(path_socket) == "READY=1"


def test_ready_with_status(path_socket: socket.socket) -> None:
    assert notify.ready("watching 1 folder") is True
    assert _received(path_socket) == "READY=1\nSTATUS=watching 1 folder"


def test_helpers_send_their_assignment(path_socket: socket.socket) -> None:
    assert notify.status("backup of /srv/bau-cu to local") is True
    assert notify.watchdog() is True
    assert notify.stopping() is True
    assert [_received(path_socket) for _ in range(3)] == [
        "STATUS=backup of /srv/bau-cu to local",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_status_cannot_forge_another_assignment(path_socket: socket.socket) -> None:
    assert notify.status("evil\nREADY=1\r\nSTOPPING=1") is True
    message = _received(path_socket)
    assert message.count("\n") == 0
    assert message.startswith("STATUS=evil ")


def test_reloading_carries_monotonic_usec(path_socket: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notify.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _received(path_socket).split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_abstract_namespace_socket(abstract_socket: socket.socket) -> None:
    assert notify.ready() is True
    assert notify.watchdog() is True
    assert _received(abstract_socket) == "READY=1"
    assert _received(abstract_socket) == "WATCHDOG=1"


def test_no_watchdog_without_environment() -> None:
    assert notify.watchdog_interval() is None


def test_watchdog_interval_is_half_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.WATCHDOG_USEC, "60000000")
    assert notify.watchdog_interval() == 30.0


def test_watchdog_for_our_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.WATCHDOG_USEC, "5000000")
    monkeypatch.setenv(notify.WATCHDOG_PID, str(os.getpid()))
    assert notify.watchdog_interval() == 2.5


def test_watchdog_meant_for_another_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.WATCHDOG_USEC, "60000000")
    monkeypatch.setenv(notify.WATCHDOG_PID, str(os.getpid() + 1))
    assert notify.watchdog_interval() is None


@pytest.mark.parametrize(
    ("usec", "pid"),
    [("0", None), ("-5", None), ("sixty", None), ("", None), ("60000000", "me")],
)
def test_malformed_watchdog_environment(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str | None
) -> None:
    monkeypatch.setenv(notify.WATCHDOG_USEC, usec)
    if pid is not None:
        monkeypatch.setenv(notify.WATCHDOG_PID, pid)
    assert notify.watchdog_interval() is None


def test_socket_path_too_long_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.NOTIFY_SOCKET, "/" + "x" * 200)
    assert notify.notify("READY=1") is False
