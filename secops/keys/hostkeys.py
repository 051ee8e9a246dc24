"""Pin an sftp target's SSH host key against the fingerprint the server's owner gave.

``secops init`` fetches the server's host keys with paramiko, keeps the one whose SHA-256
fingerprint matches the configured ``ssh_host_key_fingerprint`` and writes it to
``state_dir/ssh/<target>.known_hosts``; ssh then runs with ``StrictHostKeyChecking=yes``
against that file alone.  Nothing is ever trusted on first use.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

from secops.backup.targets import Endpoint
from secops.errors import BackupError, ConfigError, IntegrityError, TargetUnreachable
from secops.files import atomic_write

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key blob."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_line(host: str, port: int, key_type: str, blob: bytes) -> str:
    where = host if port == 22 else f"[{host}]:{port}"
    return f"{where} {key_type} {base64.b64encode(blob).decode('ascii')}\n"


def fetch_host_keys(host: str, port: int, timeout: float,
                    key_types: tuple[str, ...] = KEY_TYPES) -> dict[str, bytes]:
    """The server's public host keys, one per algorithm it offers (no authentication)."""
    import logging

    import paramiko

    # paramiko logs each refused algorithm with a traceback; probing is expected to fail.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    keys: dict[str, bytes] = {}
    for kt in key_types:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TargetUnreachable(f"{host}:{port}: {e.strerror or e}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.get_security_options().key_types = [kt]
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
            keys[key.get_name()] = key.asbytes()
        except (paramiko.SSHException, OSError, EOFError):
            continue  # the server has no key of this type
        finally:
            transport.close()
    return keys


def pin_host_key(target: str, ep: Endpoint, expected: str | None, known_hosts: Path,
                 timeout: float) -> bool:
    """Write the pinned known_hosts file; True if it was (re)written, False if unchanged."""
    assert ep.host is not None
    port = ep.port or 22
    offered = fetch_host_keys(ep.host, port, timeout)
    if not offered:
        raise BackupError(f"target {target!r}: {ep.host}:{port} offered no SSH host key",
                          target=target)
    if expected is None:
        seen = ", ".join(f"{kt} {fingerprint(b)}" for kt, b in offered.items())
        raise ConfigError(
            f"target {target!r}: ssh_host_key_fingerprint is not set; the server offers {seen}",
            hint="confirm the fingerprint with the server's owner (by phone or on paper), then "
            "set ssh_host_key_fingerprint in the config")
    for kt, blob in offered.items():
        if fingerprint(blob) == expected:
            line = known_hosts_line(ep.host, port, kt, blob)
            if known_hosts.exists() and known_hosts.read_text() == line:
                return False
            atomic_write(known_hosts, line.encode("ascii"), 0o600)
            return True
    seen = ", ".join(fingerprint(b) for b in offered.values())
    raise IntegrityError(
        f"target {target!r}: the server's SSH host key ({seen}) does not match the pinned "
        f"fingerprint {expected}",
        hint="the connection may be intercepted; verify with the server's owner")


_ALGORITHM = {"ssh-rsa": "rsa-sha2-512"}


def verify_pinned(target: str, ep: Endpoint, known_hosts: Path, timeout: float) -> None:
    """Before restic connects: the server must still present the pinned host key.

    restic passes ssh's host-key warnings on unreliably, so a changed key is caught here.
    """
    assert ep.host is not None
    try:
        _where, key_type, b64 = known_hosts.read_text(encoding="ascii").split()[:3]
        pinned = base64.b64decode(b64)
    except (OSError, ValueError):
        raise BackupError(f"target {target!r}: the host-key pin {known_hosts} is unreadable",
                          target=target, hint="run 'secops init' to pin the key again") from None
    offered = fetch_host_keys(ep.host, ep.port or 22, timeout,
                              (_ALGORITHM.get(key_type, key_type),))
    blob = offered.get(key_type)
    if blob != pinned:
        seen = fingerprint(blob) if blob else f"no {key_type} key"
        raise IntegrityError(
            f"target {target!r}: the server's SSH host key ({seen}) is not the pinned key "
            f"({fingerprint(pinned)}); refusing to connect",
            hint="the connection may be intercepted; verify with the server's owner before "
            "changing ssh_host_key_fingerprint and re-running 'secops init'")
