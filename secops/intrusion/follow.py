"""Read what the server's logs gained since the last read, across rotation and restarts.

- A file (``/var/log/auth.log``, smbd's log): its inode and the offset after the last whole
  line are kept in ``state_dir/intrusion/positions.json``. A new inode is a rotation: the
  rest of the old file is read from its rotated name (``NAME.1``, the same inode) first. A
  file shorter than the offset was truncated (copytruncate): read from its start.
- The journal: ``journalctl -o json --cursor-file`` (journalctl keeps the cursor itself).

A source met for the first time starts at its end: the history before secops watched raises
nothing, and after a restart nothing is told twice. Each read is bounded
(``MAX_READ_BYTES``); the rest comes at the next.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops import process
from secops.errors import OperationalError
from secops.files import atomic_write, ensure_private_dir

MAX_READ_BYTES = 4 << 20
JOURNAL_IDENTS = ("sshd", "sshd-session", "smbd", "useradd", "usermod", "gpasswd")
JOURNAL_TIMEOUT_S = 30.0


@dataclass
class Position:
    inode: int
    offset: int


class Positions:
    """Where each file source was read to, kept atomically (0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "positions.json"
        self.files: dict[str, Position] = {}
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self.files = {str(k): Position(int(v["inode"]), int(v["offset"]))
                          for k, v in doc.get("files", {}).items()}

    def save(self) -> None:
        ensure_private_dir(self.folder)
        doc = {"files": {k: {"inode": p.inode, "offset": p.offset}
                         for k, p in self.files.items()}}
        atomic_write(self.path, json.dumps(doc, sort_keys=True).encode(), 0o600)


def _read_from(path: Path, offset: int, limit: int) -> tuple[list[str], int]:
    """Whole lines from ``offset`` (at most ``limit`` bytes) and the offset after them."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(limit)
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) >= limit:  # one line longer than a whole read: skip it
            return [], offset + len(data)
        return [], offset
    text = data[:cut + 1].decode("utf-8", "replace")
    return text.splitlines(), offset + cut + 1


def read_file(path: Path, positions: Positions) -> list[str]:
    """New whole lines of one file source; [] when it does not exist (yet)."""
    key = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise OperationalError(f"{path}: cannot read the log: {e.strerror}") from None
    known = positions.files.get(key)
    if known is None:  # first meeting: from its end
        positions.files[key] = Position(st.st_ino, st.st_size)
        return []
    lines: list[str] = []
    budget = MAX_READ_BYTES
    if known.inode != st.st_ino:
        rotated = path.with_name(path.name + ".1")
        with contextlib.suppress(OSError):
            if rotated.stat().st_ino == known.inode:
                old, _ = _read_from(rotated, known.offset, budget)
                lines += old
                budget -= sum(len(x) + 1 for x in old)
        known = Position(st.st_ino, 0)
    elif st.st_size < known.offset:
        known = Position(st.st_ino, 0)  # truncated in place
    try:
        new, offset = _read_from(path, known.offset, max(budget, 1 << 16))
    except OSError as e:
        raise OperationalError(f"{path}: cannot read the log: {e.strerror}") from None
    positions.files[key] = Position(st.st_ino, offset)
    return lines + new


def journal_available() -> bool:
    return shutil.which("journalctl") is not None and Path("/run/systemd/journal").is_dir()


def read_journal(cursor_file: Path, *, directory: Path | None = None) -> list[dict[str, Any]]:
    """New journal entries of the login and account programs, as ``journalctl -o json``
    gives them. The first call (no cursor yet) only sets the cursor at the journal's end."""
    exe = shutil.which("journalctl")
    if exe is None:
        raise OperationalError("journalctl is missing: no journal to read",
                               hint="set intrusion.sources to a log file, e.g. "
                                    "/var/log/auth.log")
    ensure_private_dir(cursor_file.parent)
    argv = [exe, "--no-pager", "-q", "-o", "json", f"--cursor-file={cursor_file}"]
    if directory is not None:
        argv.append(f"--directory={directory}")
    first = not cursor_file.exists()
    if first:
        argv += ["-n", "0"]
    else:
        for ident in JOURNAL_IDENTS:
            argv += ["-t", ident]
    done = process.run(argv, timeout=JOURNAL_TIMEOUT_S, env=process.base_env())
    if done.returncode != 0:
        raise OperationalError(f"journalctl failed: {done.stderr.strip()[:300]}")
    entries: list[dict[str, Any]] = []
    for raw in done.stdout.splitlines()[:100_000]:
        with contextlib.suppress(ValueError):
            entry = json.loads(raw)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries
