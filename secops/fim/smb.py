"""Who is behind an ``smbd``: the clerk PC and the user a stopped Samba process served.

On a Samba share the writer fanotify names is the ``smbd`` child forked for one client
connection; stopping it stops that PC's session and nothing else. The evidence names the
client: its address from the process's own TCP connection (``/proc/<pid>/fd`` and
``/proc/net/tcp{,6}``: no Samba tool needed), and the session's user and machine from
``smbstatus --json`` run against the configuration that very smbd was started with.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from secops.errors import SecopsError

SMBSTATUS_TIMEOUT_S = 5.0  # before the freeze: a stopped smbd may hold a tdb lock
_ESTABLISHED = "01"


def is_smbd(exe: str | None, cmdline: list[str] | None) -> bool:
    names = [os.path.basename(exe or "")]
    if cmdline:
        names.append(os.path.basename(cmdline[0].split(":", 1)[0]))
    return any(n == "smbd" for n in names)


def client_of(pid: int, cmdline: list[str] | None) -> dict[str, Any]:
    """What is known of the SMB client ``pid`` serves: ``address`` (and ``port``) of its
    connection, ``user``, ``machine`` and ``dialect`` of its session; the keys found."""
    out: dict[str, Any] = {}
    peers = _peers(pid)
    if peers:
        out["address"], out["port"] = peers[0]
    session = _session(pid, cmdline)
    for key, name in (("username", "user"), ("remote_machine", "machine"),
                      ("session_dialect", "dialect")):
        value = session.get(key)
        if isinstance(value, str) and value:
            out[name] = value
    if "address" not in out and isinstance(session.get("hostname"), str):
        out["address"] = _address_of(session["hostname"])
    return out


def described(client: dict[str, Any]) -> str:
    """``user from 192.0.2.7 (machine)`` for a report line."""
    who = str(client.get("user") or "?")
    where = str(client.get("address") or "?")
    machine = client.get("machine")
    text = f"SMB: {who} from {where}"
    return f"{text} ({machine})" if machine and machine != where else text


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _peers(pid: int) -> list[tuple[str, int]]:
    """The remote ends of the process's established TCP connections."""
    inodes = _socket_inodes(pid)
    if not inodes:
        return []
    found = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _ESTABLISHED or fields[9] not in inodes:
                continue
            with contextlib.suppress(ValueError):
                found.append(parse_endpoint(fields[2], v6))
    return found


def parse_endpoint(text: str, v6: bool) -> tuple[str, int]:
    """``0100007F:D431`` (/proc/net/tcp: the address in host byte order, per 32-bit word)
    -> ("127.0.0.1", 54321); an IPv4-mapped IPv6 address is given as IPv4."""
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]
    packed = b"".join(words)
    addr = ipaddress.ip_address(packed) if not v6 else ipaddress.IPv6Address(packed)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr), int(port_hex, 16)


def _conf_of(cmdline: list[str] | None) -> str | None:
    """The ``-s FILE`` / ``--configfile=FILE`` smbd was started with."""
    args = list(cmdline or [])
    for i, arg in enumerate(args):
        if arg in ("-s", "--configfile") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--configfile="):
            return arg.split("=", 1)[1]
        if arg.startswith("-s") and len(arg) > 2:
            return arg[2:]
    return None


def _session(pid: int, cmdline: list[str] | None) -> dict[str, Any]:
    """The ``smbstatus --json`` session served by ``pid`` (empty when unknown)."""
    from secops.process import base_env, run

    argv = ["smbstatus", "--processes", "--json"]  # sessions only: no lock tables
    conf = _conf_of(cmdline)
    if conf:
        argv += ["-s", conf]
    try:
        done = run(argv, env=base_env(), timeout=SMBSTATUS_TIMEOUT_S)
    except (SecopsError, OSError):
        return {}
    return session_of(done.stdout, pid) if done.returncode == 0 else {}


def session_of(text: str, pid: int) -> dict[str, Any]:
    """From ``smbstatus --json`` output: the session whose server process is ``pid``."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    sessions = doc.get("sessions") if isinstance(doc, dict) else None
    if not isinstance(sessions, dict):
        return {}
    for session in sessions.values():
        if not isinstance(session, dict):
            continue
        server = session.get("server_id")
        if isinstance(server, dict) and str(server.get("pid")) == str(pid):
            return session
    return {}


def _address_of(hostname: str) -> str:
    """``ipv4:127.0.0.1:54321`` (smbstatus's form) -> ``127.0.0.1``."""
    kind, _, rest = hostname.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0] or rest
    return hostname
