"""Which snapshot a person means (pure): full id, short id, ``latest``, ``latest-before:T``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from secops.backup.models import Snapshot
from secops.errors import UsageError


def resolve(ref: str, snapshots: Sequence[Snapshot], target: str,
            local_tz: object = None) -> Snapshot:
    """The snapshot ``ref`` names among ``snapshots`` (of one target), or ``UsageError``."""
    snaps = sorted(snapshots, key=lambda s: s.time)
    if not snaps:
        raise UsageError(f"target {target!r} has no snapshots yet")
    if ref == "latest":
        return snaps[-1]
    if ref.startswith("latest-before:"):
        when = _parse_time(ref.removeprefix("latest-before:"))
        before = [s for s in snaps if s.time < when]
        if not before:
            raise UsageError(f"no snapshot on target {target!r} before {when.isoformat()}",
                             hint="earliest: " + _describe(snaps[:3]))
        return before[-1]
    ref_l = ref.lower()
    if len(ref_l) < 4 or any(c not in "0123456789abcdef" for c in ref_l):
        raise UsageError(f"{ref!r} is not a snapshot id, 'latest' or 'latest-before:TIME'")
    matches = [s for s in snaps if s.id.startswith(ref_l)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"{ref!r} matches {len(matches)} snapshots on target {target!r}; "
                         "give more characters", hint=_describe(matches[:5]))
    raise UsageError(f"no snapshot {ref!r} on target {target!r}",
                     hint="nearest: " + _describe(_nearest(ref_l, snaps)))


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"latest-before:{text}: expected a time like 2026-03-15T07:00 "
                         "(local time) or 2026-03-15T00:00Z") from None
    return when if when.tzinfo else when.astimezone()


def _nearest(ref: str, snaps: Sequence[Snapshot]) -> list[Snapshot]:
    def shared_prefix(s: Snapshot) -> int:
        n = 0
        for a, b in zip(ref, s.id, strict=False):
            if a != b:
                break
            n += 1
        return n

    ranked = sorted(snaps, key=lambda s: (-shared_prefix(s), -s.time.timestamp()))
    return ranked[:5]


def _describe(snaps: Sequence[Snapshot]) -> str:
    return ", ".join(f"{s.short_id} ({s.time.astimezone():%Y-%m-%d %H:%M})" for s in snaps)
