"""The office, the attacker and the questions the detection tests ask of the daemon."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from integration.corpus import make_corpus, sha_tree
from integration.daemon import Daemon, wait_for
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


@contextlib.contextmanager
def watching(office: Office, *, gate: bool = True) -> Iterator[Daemon]:
    """The daemon on ``office``, its open gate on (unless ``gate`` is False: fanotify off)
    and its first backup settled; stopped afterwards, and whatever a failed test left
    frozen lifted."""
    d = Daemon(office).start()
    try:
        if gate:
            wait_for(lambda: "the open gate are on" in d.log(), 60, "the gate")
        wait_for(lambda: settled(office), 90, "the first backup")
        yield d
    finally:
        d.stop()
        office.run("unfreeze", "--kill")


@contextlib.contextmanager
def attacking(argv: Sequence[str]) -> Iterator[subprocess.Popen[bytes]]:
    """The attacker as its own process (the defender may stop it), killed afterwards."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def ransim(office: Office, variant: str, progress: Path, *extra: str) -> list[str]:
    """argv of ``ransim.py`` on the office's folder."""
    return [sys.executable, str(RANSIM), "--variant", variant, "--dir", str(office.data),
            "--progress", str(progress), *extra]


def contained(office: Office, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until the tree is frozen (or the attacker finished unhindered)."""
    wait_for(lambda: "integrity.frozen" in kinds(office) or proc.poll() is not None,
             timeout, "containment")


def pinned_snapshot(office: Office, target: str = "local") -> str:
    """The id of the pre-attack snapshot the freeze pinned on ``target``."""
    wait_for(lambda: "integrity.snapshot_pinned" in kinds(office), 60, "the pinned snapshot")
    pinned = next(a for a in alerts(office) if a["kind"] == "integrity.snapshot_pinned")
    snap = pinned["details"]["snapshots"][target]
    assert snap["id"] and snap["tagged"], snap
    return str(snap["id"])


def assert_restores(office: Office, snap_id: str, originals: dict[str, str], out: Path) -> None:
    """Restoring ``snap_id`` into ``out`` gives back every original, byte for byte."""
    done = office.run("restore", snap_id, "--target", "local", "--to", str(out))
    assert done.code == 0, done.err
    got = sha_tree(out / str(office.data).lstrip("/"))
    assert {p: got.get(p) for p in originals} == originals
