"""The server's own state, compared with what secops last saw of it (adapter).

- ``service.new_listener``: a TCP port listening, or a UDP port bound below the kernel's
  ephemeral range, on an address other than loopback (reachable from the network), that
  was never seen before. Known ports stay known (a service restarting is no news).
- ``device.usb_storage``: a block device on the USB bus attached (``/sys/block/*`` whose
  device path runs through a USB port), with its vendor, model, serial and size. One that
  is pulled out and plugged in again is news again.
- ``account.privileged`` (a new SSH key): a key line in a user's ``~/.ssh/authorized_keys``
  (or ``authorized_keys2``) not there before: a way in that needs no password. A key
  removed and added back is news again.

What was seen is kept in ``state_dir/intrusion/host.json`` (0600). The first look ever
only learns (what is there when secops is installed is the office's own); after that,
what came while the daemon was down is told at its start. Every file is read under
``root`` (``/`` on the server; tests lay out a tree), bounded, and an unreadable one is
skipped, never fatal.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops.files import atomic_write, ensure_private_dir
from secops.intrusion.rules import Finding
from secops.review import network
from secops.review.host import Host
from secops.review.model import Unknown
from secops.review.probes_net import socket_owners

MAX_KNOWN = 4096         # remembered listeners / keys / devices (bounded state)
MAX_USERS = 2000         # passwd entries whose keys are read
MAX_KEYS_FILE = 1 << 20
KEY_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")
KEY_LINE = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]{1,64})\s+"
                      r"([A-Za-z0-9+/]{16,16384}={0,3})(?:\s+(.*))?$")
DEFAULT_EPHEMERAL = 32768


@dataclass(frozen=True)
class Seen:
    listeners: dict[str, dict[str, Any]]   # "tcp/8080" -> details
    usb: dict[str, dict[str, Any]]         # "sdb:0781:5583:SERIAL" -> details
    keys: dict[str, dict[str, Any]]        # "user SHA256:..." -> details


class HostWatch:
    def __init__(self, folder: Path, root: Path = Path("/")) -> None:
        self.host = Host(root=root)
        self.path = folder / "host.json"
        self.folder = folder
        self.known: Seen | None = self._load()

    def _load(self) -> Seen | None:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            parts = [doc[k] for k in ("listeners", "usb", "keys")]
            if all(isinstance(p, dict) and all(isinstance(v, dict) for v in p.values())
                   for p in parts):
                return Seen(*parts)
        return None  # none yet, or unreadable: the next look only learns

    def _save(self, seen: Seen) -> None:
        ensure_private_dir(self.folder)
        doc = {"listeners": seen.listeners, "usb": seen.usb, "keys": seen.keys}
        atomic_write(self.path, json.dumps(doc, sort_keys=True).encode(), 0o600)

    def poll(self, now: float) -> list[Finding]:
        """What is new since the last look (nothing at the first look ever)."""
        listeners, usb, keys = self.listeners(), self.usb_devices(), self.authorized_keys()
        old = self.known
        out: list[Finding] = []
        if old is not None:
            out += [Finding("service.new_listener", "high", now, {**d, "paths": []})
                    for k, d in sorted(listeners.items()) if k not in old.listeners]
            out += [Finding("device.usb_storage", "high", now, {**d, "paths": []})
                    for k, d in sorted(usb.items()) if k not in old.usb]
            out += [Finding("account.privileged", "critical", now, d)
                    for k, d in sorted(keys.items()) if k not in old.keys]
            listeners = {**listeners, **old.listeners}  # known ones as first seen
        seen = Seen(_bounded(listeners), _bounded(usb), _bounded(keys))
        if seen != old:
            self._save(seen)
        self.known = seen
        return out

    # -- listeners -------------------------------------------------------------------------

    def listeners(self) -> dict[str, dict[str, Any]]:
        h = self.host
        sockets: list[network.Socket] = []
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            with contextlib.suppress(Unknown):
                text = h.read_text(h.path(f"/proc/net/{proto}"), limit=64 << 20)
                sockets += network.parse_proc_net(proto, text or "")
        low = self._ephemeral_start()
        open_ = sorted((s for s in sockets if not network.is_loopback(s.address)
                        and (s.proto.startswith("tcp") or s.port < low)),
                       key=lambda s: (s.port, s.proto))
        known = self.known.listeners if self.known is not None else None
        # who listens: looked up only for what will be told (a walk of /proc/*/fd)
        names = socket_owners(h, {s.inode for s in open_ if s.inode and _key(s) not in known}
                              ) if known is not None else {}
        out: dict[str, dict[str, Any]] = {}
        for s in open_:
            out.setdefault(_key(s), {"protocol": s.proto.rstrip("6"), "port": s.port,
                                     "address": s.address, "process": names.get(s.inode, ""),
                                     "message": f"{s.label(names)} listens"})
        return out

    def _ephemeral_start(self) -> int:
        with contextlib.suppress(Unknown, ValueError, IndexError):
            text = self.host.read_text(self.host.path("/proc/sys/net/ipv4/ip_local_port_range"),
                                       limit=256)
            if text:
                return int(text.split()[0])
        return DEFAULT_EPHEMERAL

    # -- USB storage -----------------------------------------------------------------------

    def usb_devices(self) -> dict[str, dict[str, Any]]:
        h = self.host
        base = h.path("/sys/block")
        out: dict[str, dict[str, Any]] = {}
        try:
            names = h.listdir(base)
        except Unknown:
            return out
        sys_root = h.path("/sys").resolve()
        for name in names:
            try:
                real = (base / name).resolve()
                rel = real.relative_to(sys_root)
            except (OSError, ValueError):
                continue  # a link out of /sys is no device
            if not any(part.startswith("usb") for part in rel.parts):
                continue
            usb = next((p for p in real.parents if (p / "idVendor").is_file()), None)
            if usb is None:
                continue
            info = {k: self._attr(usb / k) for k in
                    ("idVendor", "idProduct", "manufacturer", "product", "serial")}
            sectors = self._attr(base / name / "size")
            size = int(sectors) * 512 if sectors.isdigit() else 0
            key = f"{name}:{info['idVendor']}:{info['idProduct']}:{info['serial']}"
            label = " ".join(v for v in (info["manufacturer"], info["product"]) if v) or "?"
            out[key] = {"device": f"/dev/{name}", "vendor_id": info["idVendor"],
                        "product_id": info["idProduct"], "manufacturer": info["manufacturer"],
                        "product": info["product"], "serial": info["serial"],
                        "size_bytes": size,
                        "message": f"USB storage /dev/{name}: {label} "
                                   f"({info['idVendor']}:{info['idProduct']}, serial "
                                   f"{info['serial'] or '?'}, {size // 1_000_000} MB)"}
        return out

    def _attr(self, p: Path) -> str:
        try:
            return (self.host.read_text(p, limit=4096) or "").strip()[:200]
        except Unknown:
            return ""

    # -- SSH keys --------------------------------------------------------------------------

    def authorized_keys(self) -> dict[str, dict[str, Any]]:
        h = self.host
        out: dict[str, dict[str, Any]] = {}
        try:
            passwd = h.read_text(h.path("/etc/passwd")) or ""
        except Unknown:
            return out
        homes: dict[str, str] = {}
        for line in passwd.splitlines()[:MAX_USERS]:
            fields = line.split(":")
            if len(fields) >= 7 and fields[5].startswith("/") and fields[0]:
                homes.setdefault(fields[5], fields[0])
        for home, user in sorted(homes.items(), key=lambda kv: kv[1]):
            for rel in KEY_FILES:
                path = h.path(home) / rel
                try:
                    text = h.read_text(path, limit=MAX_KEYS_FILE)
                except Unknown:
                    continue
                for n, line in enumerate((text or "").splitlines(), 1):
                    key = parse_key(line)
                    if key is None:
                        continue
                    kind, fp, comment = key
                    shown = f"{home.rstrip('/')}/{rel}"
                    out.setdefault(f"{user} {fp}", {
                        "user": user, "key": f"{kind} {fp}", "comment": comment,
                        "paths": [shown], "line": n,
                        "message": f"a new SSH key for {user} in {shown} line {n}: "
                                   f"{kind} {fp}" + (f" {comment}" if comment else "")})
        return out


def parse_key(line: str) -> tuple[str, str, str] | None:
    """(type, ``SHA256:...`` as ssh-keygen -l prints it, comment) of an authorized_keys line
    (options before the key allowed), or None for a comment, a blank or a broken line."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    m = KEY_LINE.search(text)
    if m is None:
        return None
    kind, blob64, comment = m.group(1), m.group(2), (m.group(3) or "")
    try:
        blob = base64.b64decode(blob64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4:4 + n].decode("ascii", "replace") != kind:
        return None  # the blob names its own type: a line that lies about it is no key
    fp = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    printable = "".join(c if c.isprintable() else "?" for c in comment.strip())
    return kind, f"SHA256:{fp}", printable[:200]


def _key(s: network.Socket) -> str:
    return f"{s.proto.rstrip('6')}/{s.port}"


def _bounded(d: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if len(d) <= MAX_KNOWN:
        return d
    return dict(sorted(d.items())[-MAX_KNOWN:])
