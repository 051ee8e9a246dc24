"""Protected files: who may change what, and when.

A rule names paths (globs relative to a watched folder, or absolute) and the windows in
which they may change. Outside every window, and outside a declared maintenance window, a
change is an ``integrity.unauthorized_change``. Windows are in the server's local time:

- ``"mon-fri 07:30-17:30"``, ``"sat 08:00-11:00"``, ``"daily 07:00-19:00"`` (recurring);
- ``"2026-03-01 08:00/2026-03-10 17:00"`` (a fixed period, e.g. voter-list updates).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RECURRING = re.compile(
    r"^(?P<d1>daily|mon|tue|wed|thu|fri|sat|sun)(?:-(?P<d2>mon|tue|wed|thu|fri|sat|sun))?"
    r"\s+(?P<t1>\d\d:\d\d)-(?P<t2>\d\d:\d\d)$")
_PERIOD = re.compile(r"^(?P<a>\d{4}-\d\d-\d\d \d\d:\d\d)\s*/\s*(?P<b>\d{4}-\d\d-\d\d \d\d:\d\d)$")


@dataclass(frozen=True)
class Window:
    text: str
    days: frozenset[int] | None = None      # recurring: weekdays 0=Monday
    start_t: time | None = None
    end_t: time | None = None
    start: datetime | None = None           # fixed period, naive local time
    end: datetime | None = None

    def contains(self, when: datetime) -> bool:
        """``when`` is naive local time."""
        if self.start is not None and self.end is not None:
            return self.start <= when <= self.end
        assert self.days is not None and self.start_t is not None and self.end_t is not None
        return when.weekday() in self.days and self.start_t <= when.time() <= self.end_t


def parse_window(text: str) -> Window:
    """Raises ValueError with a readable reason."""
    text = text.strip()
    m = _RECURRING.match(text)
    if m:
        t1, t2 = time.fromisoformat(m["t1"]), time.fromisoformat(m["t2"])
        if t2 <= t1:
            raise ValueError(f"{text!r}: the end time must be after the start time")
        if m["d1"] == "daily":
            if m["d2"]:
                raise ValueError(f"{text!r}: 'daily' takes no day range")
            days = frozenset(range(7))
        else:
            a, b = DAYS.index(m["d1"]), DAYS.index(m["d2"] or m["d1"])
            days = frozenset(range(a, b + 1)) if a <= b else \
                frozenset([*range(a, 7), *range(0, b + 1)])
        return Window(text, days=days, start_t=t1, end_t=t2)
    m = _PERIOD.match(text)
    if m:
        p1 = datetime.strptime(m["a"], "%Y-%m-%d %H:%M")
        p2 = datetime.strptime(m["b"], "%Y-%m-%d %H:%M")
        if p2 <= p1:
            raise ValueError(f"{text!r}: the period ends before it starts")
        return Window(text, start=p1, end=p2)
    raise ValueError(f"{text!r}: expected 'mon-fri 07:30-17:30', 'daily 07:00-19:00' or "
                     "'2026-03-01 08:00/2026-03-10 17:00'")


@dataclass(frozen=True)
class Rule:
    patterns: tuple[str, ...]
    windows: tuple[Window, ...]

    def matches(self, path: str, roots: Sequence[str]) -> bool:
        for pattern in self.patterns:
            if os.path.isabs(pattern):
                if _match(path, pattern):
                    return True
                continue
            for root in roots:
                rel = os.path.relpath(path, root)
                if not rel.startswith("..") and _match(rel, pattern):
                    return True
        return False

    def allows(self, when: datetime) -> bool:
        return any(w.contains(when) for w in self.windows)


def _match(path: str, pattern: str) -> bool:
    if pattern.endswith("/"):
        return path.startswith(pattern) or path.startswith(pattern.rstrip("/") + os.sep)
    if pattern.endswith("/**"):
        return path.startswith(pattern[:-2])
    return fnmatch.fnmatchcase(path, pattern)


def build_rules(raw: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[Rule]:
    return [Rule(tuple(p), tuple(parse_window(w) for w in ws)) for p, ws in raw]


def violated(rules: Sequence[Rule], path: str, roots: Sequence[str], when: datetime,
             in_maintenance: bool) -> Rule | None:
    """The rule a change to ``path`` at local time ``when`` breaks, if any."""
    if in_maintenance:
        return None
    for rule in rules:
        if rule.matches(path, roots) and not rule.allows(when):
            return rule
    return None
