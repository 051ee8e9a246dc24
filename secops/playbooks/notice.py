"""The notice to the authorities that a breach or an incident asks for: which law applies on
the incident's day, from when its hours count (what the law's ``clock`` says: the breach
occurring or its detection), the deadline, and the local time a person types when recording
that the notice went out. Pure: values in, values out (the law data is read once, packaged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from secops.clock import parse_iso
from secops.errors import UsageError
from secops.reports.law import Regime, law_in_force

_LOCAL = (re.compile(r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})[ T](?P<h>\d{1,2}):"
                     r"(?P<mi>\d{2})(?::(?P<s>\d{2}))?$"),
          re.compile(r"^(?P<d>\d{1,2})/(?P<mo>\d{1,2})/(?P<y>\d{4}) (?P<h>\d{1,2}):"
                     r"(?P<mi>\d{2})(?::(?P<s>\d{2}))?$"))


@dataclass(frozen=True)
class Deadline:
    """``hours`` after ``since`` (the moment the law's ``clock`` names): ``at``."""

    clock: str          # "occurrence" | "detection"
    since: float
    hours: int
    at: float


def occurred(event: dict[str, Any], opened: float) -> float:
    """When it began: the detector's first evidence, else the event's time, else the
    incident's opening."""
    details = event.get("details") or {}
    for text in (details.get("first_seen"), event.get("time")):
        ts = parse_iso(text) if isinstance(text, str) else None
        if ts is not None:
            return min(ts, opened)
    return opened


def detected(event: dict[str, Any], opened: float) -> float:
    """When it was detected: the event's time (the detector's alarm), else the opening."""
    text = event.get("time")
    ts = parse_iso(text) if isinstance(text, str) else None
    return opened if ts is None else min(ts, opened)


def day_of(ts: float) -> date:
    """The day in the office's (the server's) time: what ``law_in_force`` takes."""
    return datetime.fromtimestamp(ts).astimezone().date()


def regime_for(event: dict[str, Any], opened: float) -> Regime:
    """The law in force on the day the incident was detected."""
    return law_in_force(day_of(detected(event, opened)))


def deadline(event: dict[str, Any], opened: float, regime: Regime) -> Deadline | None:
    """The breach notice's deadline under ``regime``; None when no listed instrument sets
    one on that day."""
    notice = regime.breach_notice
    if notice is None or notice.provision.deadline_hours is None:
        return None
    clock = notice.provision.clock or "detection"
    since = occurred(event, opened) if clock == "occurrence" else detected(event, opened)
    hours = notice.provision.deadline_hours
    return Deadline(clock, since, hours, since + hours * 3600.0)


def parse_local(text: str, now: float) -> float:
    """``2026-03-15 09:30`` or ``15/03/2026 09:30`` (seconds optional) in the server's local
    time, as epoch seconds; not in the future (UsageError, exit 2)."""
    m = next((m for p in _LOCAL if (m := p.match(text.strip()))), None)
    if m is None:
        raise UsageError(f"--at {text!r}: not a local time",
                         hint='write it as "2026-03-15 09:30" or "15/03/2026 09:30"')
    try:
        dt = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]),
                      int(m["s"] or 0))
    except ValueError as e:
        raise UsageError(f"--at {text!r}: {e}") from None
    ts = dt.astimezone().timestamp()   # naive = local time
    if ts > now + 300:
        raise UsageError(f"--at {text!r} is in the future")
    return ts
