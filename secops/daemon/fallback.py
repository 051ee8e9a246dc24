"""Where the daemon's alerts go when ``state.db`` or the disk under ``state_dir`` fails.

A full state disk or a database damaged while the daemon runs leaves it unable to record
anything: not the alert, not its heartbeat. Silence would look like "all is well" (issue 15),
so such alerts are written where that failure cannot reach:

- the journal (the daemon's log, at ERROR);
- a small file in ``/run/secops`` (tmpfs, memory: not the state disk), one per office, that
  ``secops status`` reads beside state.db and shows first;
- a best-effort message straight to every notification recipient, past the outbox (which
  lives on the failed disk).

Once state.db takes writes again, the alerts are replayed into its events (so the playbooks,
the outbox and the weekly report see them), audited, and the file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from secops import pathtext

RUN_DIR = Path("/run/secops")
# kind -> severity; a failure of the state is its own alert, raised once per episode
STATE_FAILURES = {"state.disk_full": "critical", "state.corrupt": "critical"}
MAX_ALERTS = 200  # the file stays small whatever happens


def path_for(state_dir: str | Path, run_dir: Path | None = None) -> Path:
    """``/run/secops/fallback-<digest of state_dir>.json``: one per office on the server."""
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return (run_dir or RUN_DIR) / f"fallback-{digest}.json"


def classify(e: BaseException) -> str | None:
    """``state.disk_full``, ``state.corrupt``, or None for an error that is not the state's."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "state.disk_full"
    if not isinstance(e, sqlite3.Error):
        return None
    text = str(e).lower()
    if "full" in text:  # SQLITE_FULL: "database or disk is full"
        return "state.disk_full"
    if isinstance(e, sqlite3.DatabaseError) and any(
            w in text for w in ("malformed", "not a database", "disk i/o", "corrupt",
                                "readonly database")):
        return "state.corrupt"
    return None


def read(state_dir: str | Path, run_dir: Path | None = None) -> dict[str, Any] | None:
    """The fallback document (``since``, ``heartbeat``, ``pid``, ``alerts``), or None."""
    try:
        doc = pathtext.loads(path_for(state_dir, run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("alerts"), list) else None


class Fallback:
    def __init__(self, state_dir: str | Path, run_dir: Path | None = None) -> None:
        self.path = path_for(state_dir, run_dir)
        self.doc: dict[str, Any] | None = read(state_dir, run_dir)

    @property
    def active(self) -> bool:
        return self.doc is not None

    def kinds(self) -> set[str]:
        return {str(a.get("kind")) for a in (self.doc or {}).get("alerts", [])}

    def add(self, time_iso: str, kind: str, severity: str, details: dict[str, Any]) -> bool:
        """Keep one alert; False when it cannot be written either (the journal has it)."""
        if self.doc is None:
            self.doc = {"since": time_iso, "pid": os.getpid(), "alerts": []}
        alerts = self.doc["alerts"]
        if len(alerts) < MAX_ALERTS:
            alerts.append({"time": time_iso, "kind": kind, "source": "daemon",
                           "severity": severity, "details": details})
        else:
            self.doc["dropped"] = int(self.doc.get("dropped", 0)) + 1
        return self._write(time_iso)

    def beat(self, time_iso: str) -> None:
        """The daemon lives although state.db cannot say so."""
        if self.doc is not None:
            self._write(time_iso)

    def clear(self) -> None:
        self.doc = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _write(self, time_iso: str) -> bool:
        assert self.doc is not None
        self.doc["heartbeat"] = time_iso
        self.doc["pid"] = os.getpid()
        data = pathtext.dumps(self.doc).encode("utf-8")  # a non-UTF-8 name kept exactly
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:
            return False
        return True
