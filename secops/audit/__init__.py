"""The tamper-evident audit log (hash chain, forward-secure MACs, signed checkpoints)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def actor_cli() -> str:
    import getpass

    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"cli:{user}"


def record(state_dir: str | Path, office: str, kind: str, data: dict[str, Any],
           actor: str | None = None, *,
           on_tampered: Callable[[dict[str, Any]], None] | None = None) -> bool:
    """Append one record now (durable). False when the log has no key yet (before init).
    Once the office has an audit log, a missing or unreadable key state is never a quiet
    skip (deleting the key file would otherwise switch the audit log off): the log goes on
    under a new key behind a gap record, which verify fails on. ``on_tampered`` hears what
    the writer found wrong and wrote into the log (records cut off, the key state rolled
    back or lost), so it can be alerted; stderr hears it too."""
    import sys

    from secops.audit.log import AuditLog, audit_root_path, key_state_path, segments
    from secops.layout import StateDir

    state = Path(state_dir)
    if not key_state_path(state).exists() and not audit_root_path(state).exists() and \
            not any(p.stat().st_size for p in segments(StateDir(state).audit)):
        return False
    log = AuditLog(state, office)
    log.record(kind, actor or actor_cli(), data)
    for note in log.notes:
        sys.stderr.write(f"secops: warning: the audit log: {note.data.get('problem')}: "
                         f"{note.data.get('detail')}\n")
        if on_tampered is not None:
            on_tampered(note.data)
    return True


def record_safely(state_dir: str | Path, office: str, kind: str, data: dict[str, Any],
                  actor: str | None = None) -> None:
    """``record``, for callers whose own work must not fail because of the audit log: a
    failure to write it is reported on stderr."""
    import sys

    from secops.errors import SecopsError

    try:
        record(state_dir, office, kind, data, actor)
    except (SecopsError, OSError) as e:
        sys.stderr.write(f"secops: cannot write the audit log: {e}\n")
