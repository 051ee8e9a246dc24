"""Login and account lines of the server's own logs, as values (pure: text in, events out).

Two carriers, the same messages:

- a syslog file (``/var/log/auth.log`` where rsyslog runs): ``2026-12-03T07:41:01.123456+07:00
  host sshd[123]: Failed password for root from 10.0.0.2 port 51234 ssh2`` (Debian 12's
  default, RFC 3339) or the traditional ``Dec  3 07:41:01 host sshd[123]: ...``;
- the journal (``journalctl -o json``): ``MESSAGE``, ``SYSLOG_IDENTIFIER``, ``_PID``,
  ``__REALTIME_TIMESTAMP``; an entry whose ``_UID`` (journald's, not the writer's) is not
  root's is no line of these programs (any account may ``logger -t sshd``). A syslog file
  cannot tell them apart.

What counts (as fail2ban's ``sshd`` filter in its normal mode): a failed password or
keyboard-interactive attempt, and a connection closed before authentication by a user who
never got as far as a password (a probe); a failed public key is a client trying its keys,
not a guess. Samba's authentication audit (``log level = 1 auth_audit:3``) gives one line per
attempt with its NT status and the client's address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

MAX_LINE = 8192  # longer lines are not log lines of these programs: cut, never trusted more
MAX_TIME = 253402214400.0  # 9999-12-31Z: a local time of anything later may be no date


@dataclass(frozen=True)
class Line:
    time: float | None  # None: the carrier gave no time (the reader's clock is used)
    ident: str          # the program: sshd, smbd, useradd...
    pid: int | None
    message: str


@dataclass(frozen=True)
class AuthEvent:
    time: float
    service: str        # ssh | smb | account
    kind: str           # failure | success | invalid_user | probe_closed | account_created
    #                     | group_added
    user: str | None
    source: str | None  # the client's address, normalised
    port: int | None
    method: str | None  # password, publickey, NTLMv2...; for group_added: the group
    message: str        # the log message, cut to 300 characters


_RFC3339 = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s+\S+\s+"
    r"([^\s\[:]+)(?:\[(\d+)\])?:\s?(.*)$")
_TRADITIONAL = re.compile(
    r"^([A-Z][a-z]{2}\s+\d{1,2}\s\d\d:\d\d:\d\d)\s+\S+\s+([^\s\[:]+)(?:\[(\d+)\])?:\s?(.*)$")


def parse_syslog(text: str, *, year: int, tz: tzinfo, now: float | None = None
                 ) -> Line | None:
    """One line of a syslog file; None for what is not one. ``year`` and ``tz`` complete
    the traditional format's time, which has neither; a time more than a day after
    ``now`` (December's line read in January) is of the year before."""
    text = text[:MAX_LINE].rstrip("\r\n")
    m = _RFC3339.match(text)
    when: float | None = None
    if m:
        try:
            when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    else:
        m = _TRADITIONAL.match(text)
        if not m:
            return None
        try:
            stamp = datetime.strptime(f"{year} {' '.join(m.group(1).split())}",
                                      "%Y %b %d %H:%M:%S")
        except ValueError:
            return None
        when = stamp.replace(tzinfo=tz).timestamp()
        if now is not None and when > now + 86400:
            with contextlib.suppress(ValueError):  # 29 February of a year that has none
                when = stamp.replace(year=year - 1, tzinfo=tz).timestamp()
    return Line(when, m.group(2), int(m.group(3)) if m.group(3) else None, m.group(4))


def parse_journal(entry: Any) -> Line | None:
    """One entry of ``journalctl -o json``; None for what is not one."""
    if not isinstance(entry, dict):
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # non-UTF-8 messages come as byte arrays
        try:
            message = bytes(int(b) & 0xFF for b in message[:MAX_LINE]).decode(
                "utf-8", "replace")
        except (TypeError, ValueError, OverflowError):
            return None
    if not isinstance(message, str):
        return None
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM")
    if not isinstance(ident, str):
        return None
    uid = entry.get("_UID")  # journald's own: the identifier is the writer's to choose
    if uid is not None and str(uid) != "0":
        return None  # the programs read here write as root: this is `logger -t sshd`
    when: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        when = int(str(entry.get("__REALTIME_TIMESTAMP"))) / 1e6
    if when is not None and not 0 < when < MAX_TIME:
        when = None  # no clock gives it (and local time cannot be told of it)
    pid: int | None = None
    with contextlib.suppress(TypeError, ValueError):
        pid = int(str(entry.get("_PID") or entry.get("SYSLOG_PID")))
    return Line(when, ident, pid, message[:MAX_LINE])


SAMBA_CONTINUED = " +>"  # lib/util/debug.c: a line longer than its 4 KiB buffer goes on
MAX_RECORD = 1 << 20     # a JSON record longer than this is no audit record: dropped


def samba_line(text: str) -> Line | None:
    """A line of smbd's own log file: only its JSON authentication audit
    (``auth_json_audit:3``) is read. The human-readable ``Auth:`` line beside it puts the
    client's own words (user, workstation) before its address, unquoted: a user name
    holding "remote host [ipv4:192.168.1.5:1]" would frame an office PC."""
    text = text[:MAX_RECORD].strip()
    return Line(None, "smbd", None, text) if text.startswith('{"timestamp"') else None


class SambaRecords:
    """The lines of smbd's log file, joined into its JSON audit records.

    smbd indents each line by two spaces and cuts one longer than its 4 KiB buffer,
    ending each piece but the last with ``" +>"``. A client chooses its workstation and
    user names (kilobytes, if it likes): a record of its failure is then several lines,
    and must still count. A record only starts on a line of its own, never on the
    continuation of another: the client's words there (a long workstation name in the
    ``Auth:`` line) could otherwise begin with a record of its own making."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self.continued = False  # the last line went on to this one

    def feed(self, text: str) -> Line | None:
        body = text.rstrip("\r\n")
        goes_on = body.endswith(SAMBA_CONTINUED)
        piece = body[:-len(SAMBA_CONTINUED)] if goes_on else body
        after_cut, self.continued = self.continued, goes_on
        if self.pending is not None:
            self.pending += piece[2:] if piece.startswith("  ") else piece
            if len(self.pending) > MAX_RECORD:
                self.pending = None  # no record is that long: drop it, and its rest
                return None
            if goes_on:
                return None
            record, self.pending = self.pending, None
            return samba_line(record)
        if after_cut:
            return None  # the rest of another line, whatever it looks like
        if goes_on:
            if piece.lstrip().startswith('{"timestamp"'):
                self.pending = piece.lstrip()
            return None
        return samba_line(body)


# -- what the programs say -------------------------------------------------------------------

SSHD = frozenset({"sshd", "sshd-session"})
# A user name is the client's to choose and may hold " from 192.168.1.5 port 1": each
# pattern is anchored at the end and takes the *last* address (greedy user): the log
# injection fail2ban's filters were hardened against.
_SSH_FAILED = re.compile(
    r"^Failed (password|keyboard-interactive/pam|keyboard-interactive) for "
    r"(?:invalid user )?(.*) from (\S+) port (\d+)(?: ssh2)?\s*$")
_SSH_ACCEPTED = re.compile(r"^Accepted (\S+) for (\S+) from (\S+) port (\d+)(?: ssh2)?(?:: .*)?$")
_SSH_INVALID = re.compile(r"^Invalid user (.*) from (\S+) port (\d+)\s*$")
_SSH_CLOSED = re.compile(
    r"^(?:Connection (?:closed|reset) by|Disconnected (?:by|from)) "
    r"(?:invalid|authenticating) user (.*) "
    r"(\S+) port (\d+) \[preauth\]\s*$")
_USERADD = re.compile(r"^new user: name=([^,]+), UID=(\d+)")
_USERMOD = re.compile(r"^add '([^']+)' to (?:shadow )?group '([^']+)'")
_GPASSWD = re.compile(r"^user (\S+) added by \S+ to group (\S+)")
_SMB_REMOTE = re.compile(r"^ipv[46]:(.+):(\d+)$")


def address(text: str) -> str | None:
    """A client address as secops keeps it (``::ffff:1.2.3.4`` is 1.2.3.4), or None."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def auth_event(line: Line, now: float) -> AuthEvent | None:
    """The login or account event a line reports, or None."""
    when = line.time if line.time is not None else now
    msg = line.message
    short = msg[:300]
    if line.ident in SSHD:
        for pattern, kind in ((_SSH_FAILED, "failure"), (_SSH_ACCEPTED, "success")):
            m = pattern.match(msg)
            if m:
                return AuthEvent(when, "ssh", kind, m.group(2), address(m.group(3)),
                                 int(m.group(4)), m.group(1), short)
        m = _SSH_INVALID.match(msg)
        if m:
            return AuthEvent(when, "ssh", "invalid_user", m.group(1), address(m.group(2)),
                             int(m.group(3)), None, short)
        m = _SSH_CLOSED.match(msg)
        if m:
            return AuthEvent(when, "ssh", "probe_closed", m.group(1), address(m.group(2)),
                             int(m.group(3)), None, short)
        return None
    if line.ident in ("smbd", "samba", "samba-dcerpcd"):
        return _samba_event(msg, when, short)
    if line.ident == "useradd":
        m = _USERADD.match(msg)
        if m:
            return AuthEvent(when, "account", "account_created", m.group(1), None, None,
                             None, short)
    if line.ident in ("usermod", "gpasswd"):
        m = _USERMOD.match(msg) or _GPASSWD.match(msg)
        if m:
            return AuthEvent(when, "account", "group_added", m.group(1), None, None,
                             m.group(2), short)
    return None


def _samba_event(msg: str, when: float, short: str) -> AuthEvent | None:
    """One record of Samba's JSON authentication audit, or None."""
    if not msg.startswith("{"):
        return None
    try:
        doc = json.loads(msg)
    except ValueError:
        return None
    auth = doc.get("Authentication") if isinstance(doc, dict) else None
    if not isinstance(auth, dict) or not isinstance(auth.get("status"), str):
        return None
    m = _SMB_REMOTE.match(str(auth.get("remoteAddress") or ""))
    if m is None:
        return None
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        stamp = datetime.fromisoformat(str(doc.get("timestamp"))).timestamp()
        when = stamp if 0 < stamp < MAX_TIME else when
    domain, user = auth.get("clientDomain"), auth.get("clientAccount")
    account = f"{domain}\\{user}" if domain and user else (str(user) if user else None)
    kind = "success" if auth["status"] == "NT_STATUS_OK" else "failure"
    if kind == "success" and not user:
        return None  # an anonymous session setup: no login
    method = auth.get("passwordType")
    return AuthEvent(when, "smb", kind, account, address(m.group(1)), int(m.group(2)),
                     str(method) if method else None, short)
