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
    """Append one record now (durable). False when the log has no key yet (before init);
    once the office has an audit log, a missing key state is an error, never a quiet skip
    (deleting the key file would otherwise switch the audit log off). ``on_tampered`` hears
    what the writer found wrong and wrote into the log (records cut off, the key state
    rolled back), so it can be alerted."""
    from secops.audit.log import AuditLog, audit_root_path, key_state_path, segments
    from secops.errors import IntegrityError
    from secops.layout import StateDir

    state = Path(state_dir)
    if not key_state_path(state).exists():
        if not audit_root_path(state).exists() and not any(
                p.stat().st_size for p in segments(StateDir(state).audit)):
            return False
        raise IntegrityError(
            f"the audit MAC key state {key_state_path(state)} is gone: no record can be "
            f"sealed, so '{kind}' is not in the audit log",
            hint="secops audit verify says what else is missing; if this was not an attack, "
                 "see docs/threat-model.md (audit log)")
    log = AuditLog(state, office)
    log.record(kind, actor or actor_cli(), data)
    if on_tampered is not None:
        for note in log.notes:
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
