"""Time: an injectable clock and the one ISO-8601 UTC format used in JSON."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def iso_utc(dt: datetime) -> str:
    """``2026-03-15T07:00:00Z``: UTC, second precision, with a ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_epoch(ts: float) -> str:
    """``iso_utc`` of epoch seconds (what ``time.time()`` and state.db hold)."""
    return iso_utc(datetime.fromtimestamp(ts, UTC))


def local_text(ts: float, *, seconds: bool = False) -> str:
    """What a person reads (messages, reports, the CLI): the server's local time with its
    offset, ``15/03/2026 09:30 (UTC+07:00)``; JSON keeps ``iso_epoch``."""
    dt = datetime.fromtimestamp(ts).astimezone()
    off = dt.strftime("%z") or "+0000"
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{dt.strftime('%d/%m/%Y ' + clock)} (UTC{off[:3]}:{off[3:5]})"


def parse_iso(text: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 time (``...Z`` or with an offset); None if unreadable."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_restic_time(text: str) -> datetime:
    """Parse restic's RFC 3339 times (nanoseconds, offset) into an aware datetime."""
    text = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text)
