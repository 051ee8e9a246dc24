"""Read what the server's logs gained since the last read, across rotation and restarts.

- A file (``/var/log/auth.log``, smbd's log): its inode and the offset after the last whole
  line are kept in ``state_dir/intrusion/positions.json``. A new inode is a rotation: the
  rest of the old file is read from its rotated name (``NAME.1``, or ``NAME.old`` where smbd
  rotated its own log; the same inode) first. A file shorter than the offset, or whose bytes
  before it are not the ones read (kept as a digest), was truncated (copytruncate), even if
  it has grown again since: read from its start.
- The journal: ``journalctl -o json --cursor-file`` (journalctl keeps the cursor itself).

A source met for the first time starts at its end: the history before secops watched raises
nothing, and after a restart nothing is told twice. Each read is bounded
(``MAX_READ_BYTES``); the rest comes at the next (the rest of a rotated file too, before the
new one).

What is read must be a regular file: the name is opened once, without blocking, and the
open file is the one judged (its inode and size), so that a FIFO or a device put in place
of the log cannot hang or flood the watch, and a rotation between a look and the read
cannot mix two files. Lines end at ``\n`` only: smbd writes a client's user name raw in
its JSON, and U+2028 or NEL there is no end of a line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops import process
from secops.errors import OperationalError
from secops.files import atomic_write, ensure_private_dir

MAX_READ_BYTES = 4 << 20
ROTATED = (".1", ".old")  # where a rotated file is: logrotate's name, smbd's own
TAIL_BYTES = 256
JOURNAL_IDENTS = ("sshd", "sshd-session", "smbd", "useradd", "usermod", "gpasswd")
JOURNAL_TIMEOUT_S = 30.0


@dataclass
class Position:
    inode: int
    offset: int
    tail: str = ""  # a digest of the bytes just before ``offset``: still the same file?


class Positions:
    """Where each file source was read to, kept atomically (0600)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "positions.json"
        self.files: dict[str, Position] = {}
        doc: Any = None
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        files = doc.get("files") if isinstance(doc, dict) else None
        for key, value in files.items() if isinstance(files, dict) else ():
            known = _position(value)
            if known is not None:  # a damaged entry: that source starts afresh
                self.files[str(key)] = known

    def save(self) -> None:
        ensure_private_dir(self.folder)
        doc = {"files": {k: {"inode": p.inode, "offset": p.offset, "tail": p.tail}
                         for k, p in self.files.items()}}
        atomic_write(self.path, json.dumps(doc, sort_keys=True).encode(), 0o600)


def _position(value: Any) -> Position | None:
    """One entry of the positions file, or None when it is not a usable one."""
    if not isinstance(value, dict):
        return None
    inode, offset, tail = value.get("inode"), value.get("offset"), value.get("tail", "")
    if not isinstance(inode, int) or not isinstance(offset, int) or isinstance(
            inode, bool) or isinstance(offset, bool) or inode < 0 or offset < 0 or \
            not isinstance(tail, str):
        return None
    return Position(inode, offset, tail)


def _tail(fd: int, offset: int) -> str:
    """A digest of the (up to) TAIL_BYTES bytes before ``offset``."""
    start = max(0, offset - TAIL_BYTES)
    return hashlib.sha256(os.pread(fd, offset - start, start)).hexdigest()[:32]


def _open_log(path: Path) -> int | None:
    """An fd of the regular file ``path`` (None when it does not exist); what is not a
    regular file (a FIFO, a device, a folder) is refused before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise OperationalError(f"{path}: cannot read the log: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise OperationalError(f"{path}: cannot read the log: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OperationalError(f"{path}: not a regular file, not read as a log "
                               f"({stat.filemode(mode)})",
                               hint="put the log file back, or fix intrusion.sources")
    return fd


def _read_from(fd: int, offset: int, limit: int) -> tuple[list[str], int, bool]:
    """Whole lines from ``offset`` (at most ``limit`` bytes), the offset after them, and
    whether the read was cut by ``limit`` (more is there)."""
    data = os.pread(fd, limit, offset)
    full = len(data) >= limit
    cut = data.rfind(b"\n")
    if cut < 0:
        if full:  # one line longer than a whole read: skip it
            return [], offset + len(data), True
        return [], offset, False
    lines = [raw.decode("utf-8", "replace") for raw in data[:cut].split(b"\n")]
    return [ln.removesuffix("\r") for ln in lines], offset + cut + 1, full


def _read_rotated(path: Path, known: Position, budget: int) -> tuple[list[str], int, bool]:
    """The rest of the old file, now ``NAME.1`` (logrotate) or ``NAME.old`` (smbd's own
    rotation at ``max log size``), the same inode: its lines, the offset after them, and
    whether more is left; nothing when it is not there."""
    for suffix in ROTATED:
        fd = None
        with contextlib.suppress(OperationalError):
            fd = _open_log(path.with_name(path.name + suffix))
        if fd is None:
            continue
        try:
            if os.fstat(fd).st_ino == known.inode:
                return _read_from(fd, known.offset, budget)
        except OSError:
            pass
        finally:
            os.close(fd)
    return [], known.offset, False


def read_file(path: Path, positions: Positions) -> list[str]:
    """New whole lines of one file source; [] when it does not exist (yet)."""
    key = str(path)
    fd = _open_log(path)
    if fd is None:
        return []
    try:
        return _read_open(fd, path, key, positions)
    except OSError as e:
        raise OperationalError(f"{path}: cannot read the log: {e.strerror}") from None
    finally:
        os.close(fd)


def _read_open(fd: int, path: Path, key: str, positions: Positions) -> list[str]:
    st = os.fstat(fd)
    known = positions.files.get(key)
    if known is None:  # first meeting: from its end
        positions.files[key] = Position(st.st_ino, st.st_size, _tail(fd, st.st_size))
        return []
    lines: list[str] = []
    budget = MAX_READ_BYTES
    if known.inode != st.st_ino:
        old, offset, more = _read_rotated(path, known, budget)
        if more:  # the old file first, to its end, over as many reads as it takes
            positions.files[key] = Position(known.inode, offset)
            return old
        lines += old
        budget -= offset - known.offset
        known = Position(st.st_ino, 0)
    elif st.st_size < known.offset or (known.tail and _tail(fd, known.offset) != known.tail):
        known = Position(st.st_ino, 0)  # truncated in place (and maybe grown again since)
    new, offset, _ = _read_from(fd, known.offset, max(budget, 1 << 16))
    positions.files[key] = Position(st.st_ino, offset, _tail(fd, offset))
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
        err = done.stderr.strip()[:300]
        if not first and "cursor" in err.lower():
            # a damaged cursor is refused at every call: start again at the journal's end
            with contextlib.suppress(FileNotFoundError):
                cursor_file.unlink()
            raise OperationalError(f"journalctl failed: {err}: the cursor "
                                   f"{cursor_file} is removed, the journal is read from "
                                   "its end on")
        raise OperationalError(f"journalctl failed: {err}")
    entries: list[dict[str, Any]] = []
    # every line: the cursor is past all of them already. "\n" only: U+2028 in a
    # message ends no entry
    for raw in done.stdout.split("\n"):
        with contextlib.suppress(ValueError):
            entry = json.loads(raw)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries
