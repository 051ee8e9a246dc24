"""The ``upload`` action: files to an SFTP server (paramiko), host key pinned by fingerprint.

The server's key must match the fingerprint its owner gave (``host_key_fingerprint``), or
nothing is sent; the login key is a 0600 file. Files land in ``remote_dir/<incident>/``.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secops.errors import IntegrityError, OperationalError


def upload(target: Any, files: Sequence[Path], incident: str,
           timeout: float = 20.0) -> dict[str, Any]:
    import paramiko

    from secops.files import check_secret_file
    from secops.keys.hostkeys import fingerprint

    check_secret_file(Path(target.identity), f"SSH key of upload target {target.name!r}")
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as e:
        raise OperationalError(f"upload target {target.name!r} ({target.host}:{target.port}) "
                               f"is unreachable: {e.strerror or e}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        seen = fingerprint(transport.get_remote_server_key().asbytes())
        if seen != target.host_key_fingerprint:
            raise IntegrityError(f"upload target {target.name!r}: the server's host key is "
                                 f"{seen}, not the pinned {target.host_key_fingerprint}: "
                                 "nothing was sent")
        try:
            key = paramiko.PKey.from_path(target.identity)
            transport.auth_publickey(target.user, key)
        except (paramiko.SSHException, OSError) as e:
            raise OperationalError(f"upload target {target.name!r}: login as {target.user!r} "
                                   f"failed: {e}") from None
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:
            raise OperationalError(f"upload target {target.name!r}: no SFTP subsystem")
        remote = f"{target.remote_dir.rstrip('/')}/{incident}"
        _mkdirs(sftp, remote)
        sent = []
        for f in files:
            name = f.name
            sftp.put(str(f), f"{remote}/{name}")
            sent.append({"name": name, "size": f.stat().st_size,
                         "sha256": hashlib.sha256(f.read_bytes()).hexdigest()})
        sftp.close()
        return {"server": f"{target.user}@{target.host}:{target.port}", "remote": remote,
                "host_key": seen, "files": sent}
    except paramiko.SSHException as e:
        raise OperationalError(f"upload target {target.name!r}: {e}") from None
    finally:
        transport.close()


def _mkdirs(sftp: Any, path: str) -> None:
    parts = [p for p in path.split("/") if p and p != "."]
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        cur = f"{cur}{p}" if cur in ("", "/") else f"{cur}/{p}"
        try:
            sftp.stat(cur)
        except OSError:
            sftp.mkdir(cur)
