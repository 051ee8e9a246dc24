"""From login events to findings (pure: events and their times in, findings out).

- ``auth.bruteforce``: ``max_failures`` failed attempts from one source within
  ``find_seconds`` (fail2ban's maxretry/findtime), over SSH and Samba together; raised once
  per source and window (the block stops the source; an allow-listed one is told again only
  after a quiet window).
- ``auth.password_spray``: failed attempts on one user name from ``max_failures``
  different sources within ``find_seconds``, each source perhaps under its own threshold
  (a botnet guessing one account); raised once per user name and window.
- ``auth.login_after_failures``: a success from a source that failed at least
  ``min(3, max_failures)`` times within the window: a guess that worked.
- ``auth.login_off_hours``: a success outside the office's hours or days (local time),
  once per user, source and day.
- ``account.created``, ``account.privileged``: a new user; a user added to a group that
  can administer the server (sudo, adm, root, wheel, shadow...).

One attempt is counted once: a failed password is one; a connection an invalid or
authenticating user closed before any password (a probe) is one; "Invalid user" and the
preauth close after a counted failure add nothing.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from secops.intrusion.authlog import AuthEvent

PRIVILEGED_GROUPS = frozenset({"sudo", "adm", "root", "wheel", "admin", "shadow", "disk",
                               "lxd", "docker", "systemd-journal"})
MAX_SOURCES = 10_000  # tracked sources (least recently seen dropped first): bounded memory
MAX_CONNECTIONS = 10_000
AFTER_FAILURES_MIN = 3
MAX_PER_USER = 10_000  # failures kept per user name within the window


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    time: float
    details: dict[str, Any]


@dataclass
class _Source:
    failures: deque[tuple[float, str | None, str]] = field(default_factory=deque)
    alerted_until: float = 0.0


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5
    find_seconds: float = 600.0
    office_start_min: int = 7 * 60     # local minutes after midnight
    office_end_min: int = 17 * 60 + 30
    office_days: frozenset[int] = frozenset(range(6))  # Monday = 0
    tz: tzinfo | None = None


def parse_hours(text: str) -> tuple[int, int]:
    """``"07:00-17:30"`` -> (420, 1050)."""
    start, end = text.split("-")
    h1, m1 = start.split(":")
    h2, m2 = end.split(":")
    return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


class Rules:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sources: OrderedDict[str, _Source] = OrderedDict()
        # (service, source, port) -> attempts counted on that connection
        self.connections: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self.off_hours_told: set[tuple[str, str, str]] = set()
        # user name -> (time, source, service) of its recent failures, and when told
        self.users: OrderedDict[str, _Source] = OrderedDict()

    def feed(self, ev: AuthEvent) -> list[Finding]:
        if ev.service == "account":
            return self._account(ev)
        if ev.source is None:
            return []
        if ev.kind == "failure":
            self._connection(ev, 1)
            return self._failure(ev)
        if ev.kind == "probe_closed":
            if self._connection(ev, 0) == 0:  # closed before any attempt: a probe
                return self._failure(ev)
            return []
        if ev.kind == "success":
            return self._success(ev)
        return []  # invalid_user: its attempts are counted when they come

    # -- failures --------------------------------------------------------------------------

    def _connection(self, ev: AuthEvent, add: int) -> int:
        """Attempts counted on the event's connection before this one."""
        assert ev.source is not None
        key = (ev.service, ev.source, ev.port or 0)
        before = self.connections.pop(key, 0)
        if add or ev.kind != "probe_closed":
            self.connections[key] = before + add
            while len(self.connections) > MAX_CONNECTIONS:
                self.connections.popitem(last=False)
        return before

    def _source(self, address: str) -> _Source:
        src = self.sources.pop(address, None) or _Source()
        self.sources[address] = src  # most recently seen last
        while len(self.sources) > MAX_SOURCES:
            self.sources.popitem(last=False)
        return src

    def _recent(self, src: _Source, now: float) -> None:
        horizon = now - self.policy.find_seconds
        while src.failures and src.failures[0][0] < horizon:
            src.failures.popleft()

    def _failure(self, ev: AuthEvent) -> list[Finding]:
        return self._by_source(ev) + self._by_user(ev)

    def _by_user(self, ev: AuthEvent) -> list[Finding]:
        assert ev.source is not None
        if not ev.user:
            return []
        acc = self.users.pop(ev.user, None) or _Source()
        self.users[ev.user] = acc  # most recently seen last; bounded like the sources
        while len(self.users) > MAX_SOURCES:
            self.users.popitem(last=False)
        acc.failures.append((ev.time, ev.source, ev.service))
        if len(acc.failures) > MAX_PER_USER:  # a flood on one name: bounded memory
            acc.failures.popleft()
        self._recent(acc, ev.time)
        sources = sorted({s for _, s, _ in acc.failures if s})
        if len(sources) < max(2, self.policy.max_failures) or ev.time < acc.alerted_until:
            return []
        acc.alerted_until = ev.time + self.policy.find_seconds
        return [Finding("auth.password_spray", "high", ev.time, {
            "user": ev.user, "sources": sources[:50], "source_count": len(sources),
            "failures": len(acc.failures),
            "services": sorted({s for _, _, s in acc.failures}),
            "first": acc.failures[0][0], "last": ev.time,
            "window_seconds": self.policy.find_seconds, "message": ev.message, "paths": []})]

    def _by_source(self, ev: AuthEvent) -> list[Finding]:
        assert ev.source is not None
        src = self._source(ev.source)
        src.failures.append((ev.time, ev.user, ev.service))
        self._recent(src, ev.time)
        if len(src.failures) < self.policy.max_failures or ev.time < src.alerted_until:
            return []
        src.alerted_until = ev.time + self.policy.find_seconds
        users = sorted({u for _, u, _ in src.failures if u})
        return [Finding("auth.bruteforce", "high", ev.time, {
            "source": ev.source, "failures": len(src.failures),
            "services": sorted({s for _, _, s in src.failures}), "users": users[:20],
            "first": src.failures[0][0], "last": ev.time,
            "window_seconds": self.policy.find_seconds, "message": ev.message,
            "paths": []})]

    # -- successes -------------------------------------------------------------------------

    def _success(self, ev: AuthEvent) -> list[Finding]:
        assert ev.source is not None
        out: list[Finding] = []
        src = self.sources.get(ev.source)
        if src is not None:
            self._recent(src, ev.time)
            if len(src.failures) >= min(AFTER_FAILURES_MIN, self.policy.max_failures):
                out.append(Finding("auth.login_after_failures", "critical", ev.time, {
                    "source": ev.source, "user": ev.user, "service": ev.service,
                    "method": ev.method, "failures": len(src.failures),
                    "failed_users": sorted({u for _, u, _ in src.failures if u})[:20],
                    "message": ev.message, "paths": []}))
                src.failures.clear()
        local = datetime.fromtimestamp(ev.time, self.policy.tz)
        minute = local.hour * 60 + local.minute
        p = self.policy
        inside = local.weekday() in p.office_days and (
            p.office_start_min <= minute < p.office_end_min if p.office_start_min <=
            p.office_end_min else minute >= p.office_start_min or minute < p.office_end_min)
        key = (str(ev.user), ev.source, local.date().isoformat())
        if not inside and key not in self.off_hours_told:
            self.off_hours_told.add(key)
            if len(self.off_hours_told) > MAX_SOURCES:
                self.off_hours_told.clear()  # a new day's worth: bounded, may repeat once
            out.append(Finding("auth.login_off_hours", "medium", ev.time, {
                "source": ev.source, "user": ev.user, "service": ev.service,
                "method": ev.method, "local_time": local.isoformat(timespec="seconds"),
                "message": ev.message, "paths": []}))
        return out

    # -- accounts --------------------------------------------------------------------------

    def _account(self, ev: AuthEvent) -> list[Finding]:
        if ev.kind == "account_created":
            return [Finding("account.created", "high", ev.time, {
                "user": ev.user, "message": ev.message, "paths": []})]
        if ev.kind == "group_added" and ev.method in PRIVILEGED_GROUPS:
            return [Finding("account.privileged", "critical", ev.time, {
                "user": ev.user, "group": ev.method, "message": ev.message, "paths": []})]
        return []
