"""Checks of values the schema cannot express (pure): a URL that must be http(s), a host name
that must be a host name (not a URL, not an ssh option), no NUL byte in any value.

Each problem names the key path; ``check_values`` raises the first as a ``ConfigError``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

from secops.backup.targets import parse_repository
from secops.config.schema import Config
from secops.errors import ConfigError

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$")
HTTP = ("http", "https")


def is_host(host: str) -> bool:
    """A DNS name or an IP address: nothing that a program could read as an option, a
    URL, a port or a second line."""
    if not host or len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return bool(name) and all(_LABEL.fullmatch(label) for label in name.split("."))


def _unprintable(text: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)


def url_problem(url: str, schemes: tuple[str, ...] = HTTP) -> str | None:
    """What is wrong with ``url`` as an http(s) URL, or None."""
    if _unprintable(url):
        return "contains a space or a control character"
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port or a broken [IPv6] literal raises here
    except ValueError as e:
        return f"not a URL ({e})"
    if parts.scheme.lower() not in schemes:
        return (f"must be an {' or '.join(s + '://' for s in schemes)} URL, not "
                + (f"{parts.scheme}:" if parts.scheme else "one without a scheme"))
    if not parts.hostname or not is_host(parts.hostname):
        return "names no valid host"
    return None


def repository_problem(repo: str) -> str | None:
    """restic's network backends: the URL or host each one needs (local and other
    backends are restic's to judge)."""
    if repo.startswith("rest:"):
        return url_problem(repo.removeprefix("rest:"))
    if repo.startswith("s3:"):
        rest = repo.removeprefix("s3:")
        return url_problem(rest if "://" in rest else "https://" + rest)
    if repo.startswith("sftp:"):
        if _unprintable(repo):
            return "contains a space or a control character"
        try:
            ep = parse_repository(repo)
        except ValueError as e:
            return f"not a URL ({e})"
        if ep.kind != "sftp" or not ep.host or not is_host(ep.host):
            return "names no valid host (sftp:user@host:/path)"
        if ep.user is not None and not _USER.fullmatch(ep.user):
            return f"{ep.user!r} is not a user name"
    return None


def _strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    stack = [(value, key)]
    while stack:
        v, k = stack.pop()
        if isinstance(v, str):
            yield k, v
        elif isinstance(v, dict):
            stack.extend((item, f"{k}.{name}" if k else str(name)) for name, item in v.items())
        elif isinstance(v, list):
            stack.extend((item, f"{k}[{i}]") for i, item in enumerate(v))


def problems(cfg: Config) -> list[tuple[str, str]]:
    """(key path, problem) for every value that is not what its key says."""
    out: list[tuple[str, str]] = []
    doc = msgspec.to_builtins(cfg)
    out += [(k, "contains a NUL byte") for k, v in _strings(doc, "") if "\x00" in v]
    for name, url in cfg.notify.webhooks.items():
        p = url_problem(url)
        if p:
            out.append((f"notify.webhooks.{name}", p))
    n = cfg.notify
    if n.smtp_host is not None and not is_host(n.smtp_host):
        out.append(("notify.smtp_host", "must be a host name or an IP address (the port is "
                                        "notify.smtp_port; no scheme, no path)"))
    if "\r" in n.smtp_from or "\n" in n.smtp_from:  # it goes into a mail header
        out.append(("notify.smtp_from", "contains a line break"))
    for i, t in enumerate(cfg.backup.targets):
        p = repository_problem(t.repository)
        if p:
            out.append((f"backup.targets[{i}].repository", p))
    for i, u in enumerate(cfg.playbooks.uploads):
        if not is_host(u.host):
            out.append((f"playbooks.uploads[{i}].host", "must be a host name or an IP address"))
        if not _USER.fullmatch(u.user):
            out.append((f"playbooks.uploads[{i}].user", f"{u.user!r} is not a user name"))
    if cfg.signing is not None and cfg.signing.tsa_url is not None:
        p = url_problem(cfg.signing.tsa_url)
        if p:
            out.append(("signing.tsa_url", p))
    return out


def check_values(cfg: Config, source: str) -> None:
    found = problems(cfg)
    if found:
        key, problem = found[0]
        raise ConfigError(f"{source}: {key}: {problem}")
