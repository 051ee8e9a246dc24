"""The host watch (issue 16): a new listener reachable from the network, a USB storage
device plugged in, a new SSH key in a user's authorized_keys; each with its untouched twin.

Listeners are real sockets read from the real ``/proc``; keys are real ``ssh-keygen`` keys
whose fingerprints are compared with ``ssh-keygen -l``; USB devices are laid out as sysfs
lays them out (this machine has no USB bus: the one thing here that cannot be made real).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from secops.intrusion.host import HostWatch, parse_key
from secops.intrusion.rules import Finding

NOW = 1_790_000_000.0


def told(findings: list[Finding], kind: str) -> list[dict[str, object]]:
    return [f.details for f in findings if f.kind == kind]


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()


def listen(opened: list[socket.socket], address: str, kind: int = socket.SOCK_STREAM,
           port: int = 0) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    if kind == socket.SOCK_STREAM:
        s.listen()
    opened.append(s)
    return int(s.getsockname()[1])


def test_a_port_opened_to_the_network_is_told_once_with_its_process(
        tmp_path: Path, sockets: list[socket.socket]) -> None:
    watch = HostWatch(tmp_path / "intrusion")
    assert watch.poll(NOW) == []  # the first look only learns
    inside = listen(sockets, "127.0.0.1")  # the twin: loopback only, unreachable from the LAN
    outside = listen(sockets, "0.0.0.0")  # noqa: S104 - the listener under test
    found = {d["port"]: d for d in told(watch.poll(NOW + 5), "service.new_listener")}
    assert inside not in found
    assert found[outside]["protocol"] == "tcp" and found[outside]["address"] == "0.0.0.0"  # noqa: S104
    assert f"pid {os.getpid()}" in str(found[outside]["process"]), found[outside]
    assert outside not in {d["port"] for d in told(watch.poll(NOW + 10), "service.new_listener")}
    # a restart of the daemon: the same port is known; one opened while it was down is news
    sockets.pop().close()
    later = listen(sockets, "0.0.0.0")  # noqa: S104
    again = HostWatch(tmp_path / "intrusion")
    ports = {d["port"] for d in told(again.poll(NOW + 15), "service.new_listener")}
    assert later in ports and outside not in ports and inside not in ports


def test_udp_is_told_below_the_ephemeral_range_only(tmp_path: Path,
                                                     sockets: list[socket.socket]) -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    watch = HostWatch(tmp_path / "intrusion")
    watch.poll(NOW)
    client = listen(sockets, "0.0.0.0", socket.SOCK_DGRAM)  # noqa: S104 - a client's port
    assert client >= low
    for port in range(low - 1, low - 200, -1):  # a service's own port below the range
        try:
            server = listen(sockets, "0.0.0.0", socket.SOCK_DGRAM, port)  # noqa: S104
            break
        except OSError:
            continue
    found = {d["port"] for d in told(watch.poll(NOW + 5), "service.new_listener")}
    assert server in found and client not in found


# -- USB storage, laid out as sysfs lays it out ---------------------------------------------

USB_DEV = "devices/pci0000:00/0000:00:14.0/usb1/1-2"
SCSI = "1-2:1.0/host6/target6:0:0/6:0:0:0/block"


def plug(root: Path, name: str = "sdb", serial: str = "4C530001230915117332") -> None:
    dev = root / "sys" / USB_DEV
    for attr, value in (("idVendor", "0781"), ("idProduct", "5583"),
                        ("manufacturer", "SanDisk"), ("product", "Ultra Fit"),
                        ("serial", serial)):
        (dev / attr).parent.mkdir(parents=True, exist_ok=True)
        (dev / attr).write_text(value + "\n")
    block = dev / SCSI / name
    block.mkdir(parents=True, exist_ok=True)
    (block / "size").write_text("60088320\n")
    (root / "sys" / "block").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "block" / name).symlink_to(f"../{USB_DEV}/{SCSI}/{name}")


def unplug(root: Path, name: str = "sdb") -> None:
    (root / "sys" / "block" / name).unlink()


def internal_disk(root: Path) -> None:
    path = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
    (root / "sys" / path).mkdir(parents=True)
    (root / "sys" / path / "size").write_text("976773168\n")
    (root / "sys" / "block").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "block" / "sda").symlink_to(f"../{path}")


def test_a_usb_stick_plugged_in_is_told_each_time_and_a_disk_never(tmp_path: Path) -> None:
    root = tmp_path / "root"
    internal_disk(root)
    (root / "sys" / "block" / "odd").symlink_to("/etc")  # a link out of /sys: no device
    watch = HostWatch(tmp_path / "intrusion", root=root)
    assert watch.poll(NOW) == []
    assert watch.poll(NOW + 5) == []  # the twin: the internal disk is never USB storage
    plug(root)
    [stick] = told(watch.poll(NOW + 10), "device.usb_storage")
    assert (stick["device"], stick["vendor_id"], stick["product_id"], stick["serial"]) == (
        "/dev/sdb", "0781", "5583", "4C530001230915117332")
    assert stick["size_bytes"] == 60088320 * 512
    assert "SanDisk Ultra Fit" in str(stick["message"])
    assert watch.poll(NOW + 15) == []  # still in: told once
    unplug(root)
    assert watch.poll(NOW + 20) == []
    plug(root)  # in again: voter lists may leave on each
    assert len(told(watch.poll(NOW + 25), "device.usb_storage")) == 1


def test_a_stick_plugged_in_while_the_daemon_was_down_is_told_at_its_start(
        tmp_path: Path) -> None:
    root = tmp_path / "root"
    internal_disk(root)
    HostWatch(tmp_path / "intrusion", root=root).poll(NOW)
    plug(root)
    assert len(told(HostWatch(tmp_path / "intrusion", root=root).poll(NOW + 60),
                    "device.usb_storage")) == 1
    assert told(HostWatch(tmp_path / "intrusion", root=root).poll(NOW + 90),
                "device.usb_storage") == []


# -- SSH keys ------------------------------------------------------------------------------

def keygen(where: Path, name: str, kind: str = "ed25519") -> tuple[str, str]:
    """(the public key line, its fingerprint as ssh-keygen -l prints it)."""
    key = where / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@pc", "-f",
                    str(key)], check=True, timeout=60)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", f"{key}.pub"], check=True,
                            capture_output=True, text=True, timeout=60).stdout.split()
    return Path(f"{key}.pub").read_text().strip(), listed[1]


def office_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "canbo:x:1000:1000:Can Bo:/home/canbo:/bin/bash\n"
        "broken line\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    for home in ("root", "home/canbo"):
        (root / home / ".ssh").mkdir(parents=True)
    return root


def test_a_new_ssh_key_is_told_with_its_fingerprint_and_an_old_one_never(
        tmp_path: Path) -> None:
    root = office_root(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    old, _ = keygen(keys, "it-officer")
    new, new_fp = keygen(keys, "attacker", "rsa")
    (root / "home/canbo/.ssh/authorized_keys").write_text(old + "\n")
    watch = HostWatch(tmp_path / "intrusion", root=root)
    assert watch.poll(NOW) == []
    assert watch.poll(NOW + 5) == []  # the twin: the IT officer's key, there since before
    with (root / "root/.ssh/authorized_keys").open("a") as f:
        f.write(f'# added\ncommand="/bin/sh",no-pty {new}\n')
    [key] = told(watch.poll(NOW + 10), "account.privileged")
    assert key["user"] == "root" and key["key"] == f"ssh-rsa {new_fp}", key
    assert key["paths"] == ["/root/.ssh/authorized_keys"] and key["line"] == 2
    assert key["comment"] == "attacker@pc"
    assert watch.poll(NOW + 15) == []
    (root / "root/.ssh/authorized_keys").write_text("")  # the IT officer removes it...
    assert watch.poll(NOW + 20) == []
    (root / "root/.ssh/authorized_keys").write_text(new + "\n")  # ...and it comes back
    assert len(told(watch.poll(NOW + 25), "account.privileged")) == 1


def test_hostile_key_files_are_skipped_never_blocking_or_fatal(tmp_path: Path) -> None:
    root = office_root(tmp_path)
    watch = HostWatch(tmp_path / "intrusion", root=root)
    watch.poll(NOW)
    os.mkfifo(root / "home/canbo/.ssh/authorized_keys")  # would block a plain open
    (root / "root/.ssh/authorized_keys").write_bytes(b"\0" * 100 + b"\n")
    (root / "root/.ssh/authorized_keys2").write_text("x" * (2 << 20))
    assert watch.poll(NOW + 5) == []


def test_a_key_line_must_be_a_key() -> None:
    blob = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    assert parse_key(f"ssh-ed25519 {blob} a@b") is not None
    assert parse_key(f"ssh-rsa {blob} a@b") is None  # the blob says ed25519
    assert parse_key("ssh-ed25519 AAAAnotbase64!!!!!!!!!!!!") is None
    assert parse_key(f"# ssh-ed25519 {blob}") is None
    assert parse_key("") is None
    kind, fp, comment = parse_key(f"ssh-ed25519 {blob} a\x1b[2Jb") or ("", "", "")
    assert (kind, comment) == ("ssh-ed25519", "a?[2Jb") and fp.startswith("SHA256:")


def test_a_garbage_memory_only_learns(tmp_path: Path, sockets: list[socket.socket]) -> None:
    (tmp_path / "intrusion").mkdir()
    (tmp_path / "intrusion" / "host.json").write_text('{"listeners": [1, 2]')
    listen(sockets, "0.0.0.0")  # noqa: S104
    watch = HostWatch(tmp_path / "intrusion")
    assert watch.poll(NOW) == []
    assert (tmp_path / "intrusion" / "host.json").stat().st_mode & 0o777 == 0o600
