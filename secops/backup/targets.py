"""What a repository URL means: its kind, where it lives on the network, and how to reach it.

Pure parsing plus two thin adapters: a TCP pre-flight check (restic 0.14 retries an
unreachable REST or S3 server for about a minute before it gives up; a refused connection is
known in milliseconds) and the ssh command line that pins the host key for sftp targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from secops.errors import ConfigError, TargetUnreachable


@dataclass(frozen=True)
class Endpoint:
    kind: str  # local, rest, sftp, s3, other
    host: str | None = None
    port: int | None = None
    user: str | None = None
    path: str | None = None


_SFTP_SHORT = re.compile(r"^sftp:(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+):(?P<path>.*)$")


def parse_repository(repo: str) -> Endpoint:
    """Split a restic repository string into its parts (no I/O)."""
    if repo.startswith("/") or repo.startswith("local:"):
        return Endpoint("local", path=repo.removeprefix("local:"))
    if repo.startswith("rest:"):
        u = urlsplit(repo.removeprefix("rest:"))
        port = u.port or (443 if u.scheme == "https" else 80)
        return Endpoint("rest", host=u.hostname, port=port, path=u.path)
    if repo.startswith("s3:"):
        rest = repo.removeprefix("s3:")
        if "://" not in rest:
            rest = "https://" + rest
        u = urlsplit(rest)
        port = u.port or (443 if u.scheme == "https" else 80)
        return Endpoint("s3", host=u.hostname, port=port, path=u.path)
    if repo.startswith("sftp://"):
        u = urlsplit(repo)
        path = u.path[1:] if u.path.startswith("//") else u.path
        return Endpoint("sftp", host=u.hostname, port=u.port or 22, user=u.username, path=path)
    m = _SFTP_SHORT.match(repo)
    if m:
        return Endpoint("sftp", host=m["host"], port=22, user=m["user"], path=m["path"])
    return Endpoint("other")


def mask_repository(repo: str) -> str:
    """Hide a password embedded in a URL (``rest:https://user:pass@host/``)."""
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:****@", repo)


def preflight(name: str, ep: Endpoint, timeout: float) -> None:
    """Fail fast with ``TargetUnreachable`` when a network target refuses connections."""
    if ep.host is None or ep.port is None:
        return
    try:
        import socket  # not for a local target

        with socket.create_connection((ep.host, ep.port), timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if isinstance(e, TimeoutError | socket.timeout):
            reason = f"no answer within {timeout:.0f} s"
        raise TargetUnreachable(
            f"target {name!r} is unreachable: {ep.host}:{ep.port}: {reason}",
            target=name,
            hint="check the network and that the backup server is running; "
            "other targets are not affected",
        ) from None


def _quote(arg: str) -> str:
    if '"' in arg or "'" in arg:
        raise ConfigError(f"path {arg!r} contains a quote; restic's sftp.command cannot carry it")
    return f'"{arg}"' if any(c.isspace() for c in arg) else arg


def ssh_command(ep: Endpoint, identity: Path | None, known_hosts: Path, timeout: float) -> str:
    """The ``sftp.command`` for restic: our key, our pinned host key, no prompts."""
    assert ep.host is not None
    argv = [
        "ssh", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={int(timeout)}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-p", str(ep.port or 22),
    ]
    if identity is not None:
        argv += ["-o", "IdentitiesOnly=yes", "-i", str(identity)]
    target = f"{ep.user}@{ep.host}" if ep.user else ep.host
    argv += [target, "-s", "sftp"]
    return " ".join(_quote(a) for a in argv)
