"""The audit log writer: ``state_dir/audit/audit.jsonl`` and ``checkpoints.jsonl``.

Writers (the daemon, each CLI command) take ``audit.lock`` (flock) for every batch: the
batch is written and fsync'd, then the evolved MAC key replaces the old one (atomic rename,
fsync). A crash between the two leaves the key behind the log, and the next writer evolves it
forward; a key *ahead* of the log means records vanished (truncation), and the next writer
says so in the log itself rather than quietly reusing their numbers (journald's
CVE-2023-31438 class).

Rotation renames ``audit.jsonl`` to ``audit-<first>-<last>.jsonl`` and starts afresh; the
chain continues across files.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops.audit import chain
from secops.clock import iso_utc
from secops.errors import ConfigError, IntegrityError
from secops.files import atomic_write, ensure_private_dir
from secops.layout import StateDir

SEGMENT = re.compile(r"^audit-(\d{10})-(\d{10})\.jsonl$")
CHECKPOINT_EVERY_RECORDS = 1000
CHECKPOINT_EVERY_S = 600.0
ROTATE_BYTES = 64 << 20


@dataclass(frozen=True)
class Item:
    kind: str
    actor: str
    data: dict[str, Any]


@dataclass
class Head:
    seq: int          # the last record's number (-1: empty log)
    hash: str         # its line hash (GENESIS_PREV when empty)


def audit_paths(state_dir: Path) -> tuple[Path, Path, Path]:
    folder = StateDir(state_dir).audit
    return folder / "audit.jsonl", folder / "checkpoints.jsonl", folder / "audit.lock"


def key_state_path(state_dir: Path) -> Path:
    return StateDir(state_dir).keys / "audit-mac.state"


def initial_key_path(state_dir: Path) -> Path:
    return StateDir(state_dir).keys / "audit-mac.initial"


def ensure_keys(state_dir: Path) -> bool:
    """Create K_0 (kept until it is in key escrow) and the evolving key; True if created."""
    state = key_state_path(state_dir)
    if state.exists():
        return False
    ensure_private_dir(state.parent)
    k0 = os.urandom(32)
    atomic_write(initial_key_path(state_dir), k0.hex().encode() + b"\n", 0o600)
    _write_key_state(state, 0, k0)
    return True


def _write_key_state(path: Path, next_seq: int, key: bytes) -> None:
    atomic_write(path, json.dumps({"next_seq": next_seq, "key": key.hex()}).encode(), 0o600)


def _read_key_state(path: Path) -> tuple[int, bytes]:
    try:
        doc = json.loads(path.read_text(encoding="ascii"))
        return int(doc["next_seq"]), bytes.fromhex(doc["key"])
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: the audit log has no key yet",
                          hint="run 'secops init'") from None
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path}: the audit MAC key state is unreadable") from None


def segments(folder: Path) -> list[Path]:
    """Rotated segments in order, then the current file."""
    rotated = sorted((p for p in folder.glob("audit-*.jsonl") if SEGMENT.match(p.name)),
                     key=lambda p: p.name)
    current = folder / "audit.jsonl"
    return [*rotated, current] if current.exists() else rotated


def read_head(folder: Path) -> tuple[Head, int]:
    """The last complete record, and the length of a partial last line (0 if none)."""
    for path in reversed(segments(folder)):
        size = path.stat().st_size
        if size == 0:
            continue
        with path.open("rb") as f:
            back = min(size, 1 << 16)
            f.seek(size - back)
            tail = f.read(back)
        partial = 0
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            partial = len(tail) - cut - 1
            tail = tail[:cut + 1]
            if cut < 0:
                if size > back:
                    raise IntegrityError(f"{path}: last record longer than 64 KiB")
                continue
        line = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            seq = int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"{path}: the last audit record is unreadable") from None
        return Head(seq, chain.line_hash(line)), (partial if path.name == "audit.jsonl" else 0)
    return Head(-1, chain.GENESIS_PREV), 0


class AuditLog:
    def __init__(self, state_dir: Path, office: str) -> None:
        self.state_dir = Path(state_dir)
        self.office = office
        self.folder = StateDir(self.state_dir).audit
        self.path, self.checkpoints_path, self.lock_path = audit_paths(self.state_dir)
        self.rotate_bytes = ROTATE_BYTES
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_private_dir(self.folder)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, items: Sequence[Item]) -> Head:
        """Write ``items`` as one durable batch; returns the new head."""
        if not items:
            return self.head()
        with self._locked():
            head, partial = read_head(self.folder)
            next_seq, key = _read_key_state(key_state_path(self.state_dir))
            notes: list[Item] = []
            if partial:
                notes.append(self._drop_partial(partial))
            if next_seq < head.seq + 1:  # crashed after the log's fsync: catch the key up
                key = chain.key_at(key, head.seq + 1, next_seq)
                next_seq = head.seq + 1
            elif next_seq > head.seq + 1:
                notes.append(Item("audit.tampered", "secops", {
                    "problem": "truncated", "log_ends_at": head.seq,
                    "records_missing_from": head.seq + 1, "key_expects": next_seq,
                    "detail": "the audit log is shorter than its MAC key says; writing "
                              "continues after the gap, which stays visible"}))
            lines = []
            prev = head.hash
            now = iso_utc_now()
            for it in [*notes, *items]:
                line = chain.encode(next_seq, now, prev, kind=it.kind, actor=it.actor,
                                    data=it.data, key=key)
                lines.append(line)
                prev = chain.line_hash(line)
                key = chain.evolve(key)
                next_seq += 1
            self._write_lines(lines)
            _write_key_state(key_state_path(self.state_dir), next_seq, key)
            new_head = Head(next_seq - 1, prev)
            self._since_checkpoint += len(lines)
            if self._since_checkpoint >= CHECKPOINT_EVERY_RECORDS or \
                    time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
                self._checkpoint(new_head)
            if self.path.stat().st_size >= self.rotate_bytes:
                self._rotate(new_head)
            return new_head

    def record(self, kind: str, actor: str, data: dict[str, Any]) -> Head:
        return self.append([Item(kind, actor, data)])

    def head(self) -> Head:
        return read_head(self.folder)[0]

    def checkpoint(self) -> dict[str, Any]:
        """Sign (seq, head hash, time) with the office key into checkpoints.jsonl now."""
        with self._locked():
            head, _ = read_head(self.folder)
            return self._checkpoint(head)

    def _checkpoint(self, head: Head) -> dict[str, Any]:
        from secops.keys.signature import public_key_id
        from secops.keys.store import load_office_key

        key = load_office_key(StateDir(self.state_dir).ed25519_key)
        now = iso_utc_now()
        msg = chain.checkpoint_message(self.office, head.seq, head.hash, now)
        doc = {"seq": head.seq, "head": head.hash, "time": now, "log": self.office,
               "key_id": public_key_id(key.public_key()),
               "sig": base64.b64encode(key.sign(msg)).decode("ascii")}
        data = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.checkpoints_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                     os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        return doc

    def _write_lines(self, lines: list[bytes]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            data = b"\n".join(lines) + b"\n"
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _drop_partial(self, partial: int) -> Item:
        """A line cut by a crash before its fsync: remove it, and say so in the log."""
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            f.seek(size - partial)
            cut = f.read()
        os.truncate(self.path, size - partial)
        import hashlib

        return Item("audit.partial_line_dropped", "secops", {
            "bytes": partial, "sha256": hashlib.sha256(cut).hexdigest()})

    def _rotate(self, head: Head) -> None:
        with self.path.open("rb") as f:
            first = json.loads(f.readline())["seq"]
        target = self.folder / f"audit-{first:010d}-{head.seq:010d}.jsonl"
        os.replace(self.path, target)
        self.path.touch(mode=0o600)


def iso_utc_now() -> str:
    from datetime import UTC, datetime

    return iso_utc(datetime.now(UTC))
