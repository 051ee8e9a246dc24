"""An audit log started as ``secops init`` starts it: the office's Ed25519 key, the MAC key
and the first checkpoint (the chain's root) before any record."""

from __future__ import annotations

from pathlib import Path

from secops.audit.log import AuditLog, ensure_keys
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir


def started_audit_log(state: Path, office: str) -> AuditLog:
    sd = StateDir(state)
    ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
    ensure_keys(state)
    log = AuditLog(state, office)
    log.checkpoint()
    return log
