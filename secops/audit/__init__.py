"""The tamper-evident audit log (hash chain, forward-secure MACs, signed checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def actor_cli() -> str:
    import getpass

    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"cli:{user}"


def record(state_dir: str | Path, office: str, kind: str, data: dict[str, Any],
           actor: str | None = None) -> bool:
    """Append one record now (durable). False when the log has no key yet (before init)."""
    from secops.audit.log import AuditLog, key_state_path

    if not key_state_path(Path(state_dir)).exists():
        return False
    AuditLog(Path(state_dir), office).record(kind, actor or actor_cli(), data)
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
