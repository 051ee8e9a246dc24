"""Values that describe backups and snapshots (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from secops.clock import iso_utc


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime
    target: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    hostname: str
    tree: str = ""          # restic keeps it (and the time) when `tag` rewrites a snapshot

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": iso_utc(self.time),
            "target": self.target,
            "paths": list(self.paths),
            "tags": list(self.tags),
            "hostname": self.hostname,
        }


@dataclass(frozen=True)
class BackupSummary:
    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int
    total_files: int
    total_bytes: int
    warnings: tuple[str, ...] = ()


@dataclass
class TargetResult:
    target: str
    ok: bool
    snapshot_id: str | None = None
    files_new: int = 0
    files_changed: int = 0
    data_added: int = 0
    duration_s: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    exit_code: int = 0  # of the error: 1 integrity (e.g. host key changed), 2 setup, 3 other
    stalled: bool = False  # stopped for showing no progress (backup.stall_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "snapshot_id": self.snapshot_id,
            "files_new": self.files_new,
            "files_changed": self.files_changed,
            "data_added": self.data_added,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Progress:
    percent: float
    files_done: int
    total_files: int
    bytes_done: int
    total_bytes: int
