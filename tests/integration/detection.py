"""The office, the attacker and the questions the detection tests ask of the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from integration.corpus import make_corpus, sha_tree
from integration.office import QUIET_SCHEDULE, Office, target_toml

RANSIM = Path(__file__).with_name("ransim.py")
TAIL = QUIET_SCHEDULE
FAST = "debounce_seconds = 1\nmax_delay_seconds = 10"
BAD = ("ransomware.suspected", "canary.touched", "integrity.frozen")


def make_office(tmp_path: Path, extra_tail: str = "", backup_extra: str = FAST) -> Office:
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=backup_extra, tail=TAIL + extra_tail,
                    lock_wait=180)  # the pins (restic tag, exclusive) may run meanwhile
    make_corpus(office.data, n=300, seed=7)
    office.write()
    assert office.run("init").code == 0
    return office


def alerts(office: Office) -> list[dict[str, Any]]:
    doc = office.run("status", "--json").json()
    return list(doc["alerts"])


def kinds(office: Office) -> list[str]:
    return [a["kind"] for a in alerts(office)]


def settled(office: Office) -> bool:
    doc = office.run("status", "--json").json()
    return doc["pending_changes"] == 0 and all(t["last_ok"] for t in doc["targets"].values())


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def documents(root: Path, pattern: str) -> list[Path]:
    """The user's own documents (secops' canaries are not theirs to touch)."""
    return sorted(p for p in root.glob(pattern) if "secops-canary" not in p.name)


def damaged(before: dict[str, str], root: Path) -> list[str]:
    after = sha_tree(root)
    return sorted(p for p, h in before.items() if after.get(p) != h)
