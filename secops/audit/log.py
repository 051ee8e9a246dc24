"""The audit log writer: ``state_dir/audit/audit.jsonl`` and ``checkpoints.jsonl``.

Writers (the daemon, each CLI command) take ``audit.lock`` (flock) for every batch: the
batch is written and fsync'd, then the evolved MAC key replaces the old one (atomic rename,
fsync). A crash between the two leaves the key behind the log, and the next writer evolves it
forward; a key *ahead* of the log means records vanished (truncation), and the next writer
says so in the log itself rather than quietly reusing their numbers (journald's
CVE-2023-31438 class).

Checkpoints (``checkpoints.py``) are signed with one-time keys: ``keys/audit-checkpoint.state``
holds the key of the next checkpoint only. Making checkpoint ``n``: generate key ``n + 1`` and
note it as pending in the state file, append the line (fsync), then replace the state file with
key ``n + 1`` alone; a crash between the two is reconciled from the last line's ``next_key``.

Rotation renames ``audit.jsonl`` to ``audit-<first>-<last>.jsonl`` and starts afresh; the
chain continues across files.
"""

from __future__ import annotations

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

# the snapshot tags that anchor the log off-site (written by every backup, read by verify)
AUDIT_TAG = "audit:"        # snapshot tag "audit:<seq>:<head, 32 hex>"
ROOT_TAG = "audit-root:"    # snapshot tag "audit-root:<key id of the checkpoint chain root>"

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


def checkpoint_key_path(state_dir: Path) -> Path:
    return StateDir(state_dir).keys / "audit-checkpoint.state"


def audit_root_path(state_dir: Path) -> Path:
    """The public half of checkpoint key 0, exported for verifiers to pin."""
    return StateDir(state_dir).keys / "audit-root.pub"


def ensure_keys(state_dir: Path) -> bool:
    """Create K_0 (kept until it is in key escrow), the evolving MAC key, and the root of the
    checkpoint key chain; True if anything was created."""
    created = False
    state = key_state_path(state_dir)
    if not state.exists():
        log, _, _ = audit_paths(state_dir)
        if _has_lines(log) or any(p.stat().st_size for p in segments(log.parent)):
            # a new K_0 would seal a log the escrowed one no longer verifies, and the
            # server's own verify would not see the switch: never quietly
            raise IntegrityError(
                f"the audit MAC key state {state} is gone but the audit log has records: "
                "init does not make a new key for an existing log",
                hint="keep the folder as evidence (mv "
                     f"{log.parent} {log.parent}.keyless), then run 'secops init' again to "
                     "start a new log, and put its new initial key in escrow "
                     "(docs/threat-model.md, audit log)")
        ensure_private_dir(state.parent)
        k0 = os.urandom(32)
        atomic_write(initial_key_path(state_dir), k0.hex().encode() + b"\n", 0o600)
        _write_key_state(state, 0, k0)
        created = True
    cp_state = checkpoint_key_path(state_dir)
    _, checkpoints, _ = audit_paths(state_dir)
    if not cp_state.exists() and not _has_lines(checkpoints):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from secops.keys.store import public_pem

        root = Ed25519PrivateKey.generate()
        _write_checkpoint_state(cp_state, 0, root)
        atomic_write(audit_root_path(state_dir), public_pem(root), 0o644)
        created = True
    return created


def _has_lines(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _private_raw(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw: bytes = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
    return raw


def _write_checkpoint_state(path: Path, n: int, key: Any, pending: Any = None) -> None:
    doc: dict[str, Any] = {"n": n, "key": _private_raw(key).hex()}
    if pending is not None:
        doc["pending"] = _private_raw(pending).hex()
    overwrite_key_file(path, json.dumps(doc).encode())


def read_checkpoint_state(path: Path) -> tuple[int, Any, Any]:
    """(n, key of checkpoint n, pending key n+1 or None); IntegrityError when unusable."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        doc = json.loads(path.read_text(encoding="ascii"))
        n = int(doc["n"])
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["key"]))
        pending = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["pending"])) \
            if doc.get("pending") else None
    except FileNotFoundError:
        raise IntegrityError(f"{path} does not exist: the key of the next audit checkpoint "
                             "is gone, so no checkpoint can be signed",
                             hint="if this was not an attack, see docs/threat-model.md "
                                  "(audit log): the chain cannot be continued") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path}: the audit checkpoint key state is unreadable") from None
    return n, key, pending


def last_checkpoint_line(path: Path) -> bytes | None:
    """The last complete line of checkpoints.jsonl (None when there is none)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with path.open("rb") as f:
        back = min(size, 1 << 16)
        f.seek(size - back)
        tail = f.read(back)
    lines = [x for x in tail.split(b"\n") if x]
    if not tail.endswith(b"\n") and lines:
        lines.pop()  # cut by a crash: not a checkpoint
    return lines[-1] if lines else None


def _write_key_state(path: Path, next_seq: int, key: bytes) -> None:
    overwrite_key_file(path, json.dumps({"next_seq": next_seq, "key": key.hex()}).encode())


KEY_RECORD = 512  # one sector: a key file is rewritten whole, in place, in one write


def overwrite_key_file(path: Path, doc: bytes) -> None:
    """Replace a key file's content *in place*: the same inode and the same disk blocks, one
    fixed-size write (within a sector, so not torn), then fdatasync. A rename of a new file
    over the old one (``atomic_write``) would leave the old key in freed blocks, where a
    thief of the disk, or root with the raw device, can read it back and re-sign the past.
    (Copy-on-write filesystems, SSD wear levelling and VM snapshots can still keep old
    blocks: docs/threat-model.md.)"""
    if len(doc) + 1 > KEY_RECORD:
        raise ValueError("key record too long")
    record = doc + b"\n" + b" " * (KEY_RECORD - len(doc) - 1)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if os.pwrite(fd, record, 0) != KEY_RECORD:
            raise OSError(f"{path}: short write of the key record")
        os.ftruncate(fd, KEY_RECORD)
        os.fdatasync(fd)
    finally:
        os.close(fd)


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
        self.notes: list[Item] = []  # what the last append found wrong and wrote down

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
            notes: list[Item] = []
            try:
                next_seq, key = _read_key_state(key_state_path(self.state_dir))
            except (ConfigError, IntegrityError) as e:
                if head.seq < 0:
                    raise  # no log yet: init makes its first key
                # deleted or garbage: the log goes on under a new key, behind a record that
                # says so (no record is ever skipped; verify fails from here on)
                next_seq, key = head.seq + 1, os.urandom(32)
                notes.append(key_lost_note(head.seq, e.message))
            if partial:
                notes.append(self._drop_partial(partial))
            if next_seq < head.seq + 1:
                if not one_batch(self.path, next_seq, head.seq):
                    # not the last batch's crash window: an older copy put back
                    notes.append(Item("audit.tampered", "secops", {
                        "problem": "key_rolled_back", "key_was_at": next_seq,
                        "log_ends_at": head.seq,
                        "detail": "the audit MAC key state is older than the log: an earlier "
                                  "copy of it was put back, and whoever kept that copy can "
                                  f"seal records from number {next_seq} on; writing "
                                  "continues, this record marks where trust ends"}))
                # crashed after the log's fsync (or rolled back): catch the key up
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
            self.notes = [n for n in notes if n.kind == "audit.tampered"]
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
        """Sign (seq, head hash, time) into checkpoints.jsonl now, with the next one-time key."""
        with self._locked():
            head, _ = read_head(self.folder)
            doc = self._checkpoint(head)
        if doc["out_of_step"]:
            self.record("audit.tampered", "secops", {
                "problem": "checkpoint", "checkpoint": doc["n"],
                "detail": "checkpoints.jsonl does not end with the checkpoint before this "
                          "one: checkpoints were removed, or the key state was replaced; the "
                          "chain stays broken at this point"})
        return doc

    def _checkpoint(self, head: Head) -> dict[str, Any]:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from secops.audit import checkpoints as cps

        state_path = checkpoint_key_path(self.state_dir)
        n, key, pending = read_checkpoint_state(state_path)
        last_raw = last_checkpoint_line(self.checkpoints_path)
        last = _parse_quietly(last_raw)
        if pending is not None and last is not None and last.n == n and \
                last.next_key == cps.b64(cps.raw_public(pending)):
            # crashed after the line was written, before the state moved on
            n, key = n + 1, pending
            _write_checkpoint_state(state_path, n, key)
        nxt = Ed25519PrivateKey.generate()
        _write_checkpoint_state(state_path, n, key, pending=nxt)
        now = iso_utc_now()
        office_key = None
        if n == 0:
            from secops.keys.store import load_office_key

            office_key = load_office_key(StateDir(self.state_dir).ed25519_key)
        line = cps.encode(n=n, seq=head.seq, head=head.hash, time=now, log=self.office,
                          prev=cps.line_hash(last_raw) if last_raw else cps.ZERO,
                          signer=key, next_key=nxt, office_key=office_key)
        fd = os.open(self.checkpoints_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                     os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_checkpoint_state(state_path, n + 1, nxt)  # key n is gone from here on
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        doc: dict[str, Any] = json.loads(line)
        doc["out_of_step"] = (last is None and n > 0) or (last is not None and last.n != n - 1)
        return doc

    def _write_lines(self, lines: list[bytes]) -> None:
        """Append the batch whole or not at all: a write that fails half-way (a full disk)
        is cut back off, so it never leaves a torn line that would read as tampering."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size  # under audit.lock: no other writer moves it
            data = b"\n".join(lines) + b"\n"
            view = memoryview(data)
            try:
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
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


def key_lost_note(log_ends_at: int, error: str) -> Item:
    """The gap record written where the MAC key state was found gone or unreadable."""
    return Item("audit.tampered", "secops", {
        "problem": "key_lost", "log_ends_at": log_ends_at, "error": error,
        "detail": "the audit MAC key state was deleted or made unreadable; records from this "
                  "one on are sealed under a new key that no escrow holds: the hash chain "
                  "and the signed checkpoints still vouch for them, their MACs cannot be "
                  "checked"})


def one_batch(path: Path, first: int, last: int) -> bool:
    """Records ``first`` to ``last`` are the end of one batch (written together, one time):
    the key state a crash leaves behind is at most the last batch old; one older than that
    was put back. Read from the current file's tail (a batch is a few records)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            f.seek(max(0, size - (1 << 16)))
            tail = f.read()
    except OSError:
        return False
    times: dict[int, str] = {}
    for line in tail.split(b"\n"):
        try:
            doc = json.loads(line)
            times[int(doc["seq"])] = str(doc["time"])
        except (ValueError, KeyError, TypeError):
            continue
    wanted = [times.get(n) for n in range(first, last + 1)]
    return None not in wanted and len(set(wanted)) == 1


def _parse_quietly(raw: bytes | None) -> Any:
    from secops.audit import checkpoints as cps

    if raw is None:
        return None
    try:
        return cps.parse(raw, 0)
    except ValueError:
        return None


def iso_utc_now() -> str:
    from datetime import UTC, datetime

    return iso_utc(datetime.now(UTC))
