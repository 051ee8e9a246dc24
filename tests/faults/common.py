"""What the fault tests share: the daemon's status as a script reads it, and the config
tail that retries a failing target within seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from integration.daemon import snapshot_count
from integration.office import Office

FAST = "debounce_seconds = 1\nmax_delay_seconds = 10"
RETRY_TAIL = """
[daemon]
retry_min_seconds = 1
retry_max_seconds = 4
"""


def status(office: Office, env: dict[str, str] | None = None) -> Any:
    doc = office.run("status", "--json", env=env).json()
    assert isinstance(doc, dict)
    return doc


def settled(office: Office, env: dict[str, str] | None = None) -> bool:
    """Nothing pending and every target's last backup good."""
    doc = status(office, env)
    return doc["pending_changes"] == 0 and all(t["last_ok"] for t in doc["targets"].values())


def kinds(office: Office) -> list[str]:
    return [str(a["kind"]) for a in status(office)["alerts"]]


def more_than(office: Office, target: str, count: int) -> bool:
    return snapshot_count(office, target) > count


def drop_subjects(drop: Path) -> list[str]:
    """The subjects of the messages the file channel dropped."""
    if not drop.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8"))["subject"] for p in drop.glob("*.json")]
