"""Retention policy as restic ``forget`` flags (pure).

Snapshots tagged ``pinned`` are always kept; append-only targets are never given a policy.
"""

from __future__ import annotations

from secops.config.schema import Retention

PINNED_TAG = "pinned"


def forget_args(policy: Retention, office_code: str) -> list[str]:
    """The ``restic forget`` flags for ``policy``; empty when the policy keeps everything."""
    args: list[str] = []
    if policy.keep_within:
        args += ["--keep-within", policy.keep_within]
    for flag, value in (
        ("--keep-last", policy.keep_last),
        ("--keep-hourly", policy.keep_hourly),
        ("--keep-daily", policy.keep_daily),
        ("--keep-weekly", policy.keep_weekly),
        ("--keep-monthly", policy.keep_monthly),
        ("--keep-yearly", policy.keep_yearly),
    ):
        if value is not None:
            args += [flag, str(value)]
    if not args:
        return []
    return [*args, "--keep-tag", PINNED_TAG, "--tag", office_tag(office_code)]


def office_tag(code: str) -> str:
    return f"office:{code}"


def reason_tag(reason: str) -> str:
    return f"reason:{reason}"


def snapshot_tags(office_code: str, reason: str, extra: tuple[str, ...] = ()) -> list[str]:
    return ["secops", office_tag(office_code), reason_tag(reason), *extra]
