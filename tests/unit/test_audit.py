"""The audit log: every tampering class is caught, naming the first bad record; each case
has an untouched twin that verifies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from secops.audit import chain
from secops.audit.log import AuditLog, Item, ensure_keys, initial_key_path, key_state_path
from secops.audit.verify import Offsite, Report, verify
from secops.keys.signature import load_public_key
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir


class Log:
    def __init__(self, root: Path, records: int = 50, checkpoint_every: int = 0) -> None:
        self.state = root / "state"
        sd = StateDir(self.state)
        ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
        ensure_keys(self.state)
        self.k0 = bytes.fromhex(initial_key_path(self.state).read_text().strip())
        self.public = load_public_key(sd.ed25519_pub)
        self.log = AuditLog(self.state, "tan-ky")
        self.log.checkpoint()  # as `secops init` does: the chain's root, before any record
        for i in range(records):
            self.log.record("backup.completed", "daemon", {"target": "local", "n": i,
                                                           "ghi_chú": "sao lưu định kỳ"})
            if checkpoint_every and (i + 1) % checkpoint_every == 0:
                self.log.checkpoint()
        self.folder = sd.audit

    @property
    def path(self) -> Path:
        return self.folder / "audit.jsonl"

    def lines(self) -> list[bytes]:
        return self.path.read_bytes().split(b"\n")[:-1]

    def write(self, lines: list[bytes]) -> None:
        self.path.write_bytes(b"".join(line + b"\n" for line in lines))

    def verify(self, with_key: bool = True, **kw: object) -> Report:
        return verify(self.folder, public_key=self.public,
                      initial_key=self.k0 if with_key else None, **kw)  # type: ignore[arg-type]


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path, 50, checkpoint_every=10)


def test_untouched_log_verifies(log: Log) -> None:
    r = log.verify()
    assert r.ok and r.records == 50 and r.checkpoints_verified == 5 and r.macs_checked
    assert log.verify(with_key=False).ok


def test_byte_modification(log: Log) -> None:
    lines = log.lines()
    lines[20] = lines[20].replace(b'"n":20', b'"n":29')
    log.write(lines)
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 20 and r.problem == "mac"
    r = log.verify(with_key=False)  # without the key: the chain and the checkpoint
    assert not r.ok and r.first_bad_seq in (19, 20, 21)


def test_deleted_middle_record(log: Log) -> None:
    lines = log.lines()
    del lines[25]
    log.write(lines)
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 25, "sequence")


def test_inserted_record(log: Log) -> None:
    lines = log.lines()
    fake = chain.encode(30, "2026-03-15T07:00:00Z", chain.line_hash(lines[29]), kind="x",
                        actor="y", data={}, key=b"k" * 32)
    lines.insert(30, fake)
    log.write(lines)
    r = log.verify()
    assert not r.ok and r.first_bad_seq == 30 and r.problem in ("mac", "sequence")


def test_reordered_records(log: Log) -> None:
    lines = log.lines()
    lines[12], lines[13] = lines[13], lines[12]
    log.write(lines)
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 12, "sequence")


def test_replayed_record(log: Log) -> None:
    lines = log.lines()
    lines.insert(41, lines[40])
    log.write(lines)
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 41, "sequence")


def test_tail_truncation_against_a_checkpoint(log: Log) -> None:
    log.write(log.lines()[:45])  # the checkpoint at record 49 vouches for more
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 45, "truncated")


def test_rollback_of_log_and_checkpoints_caught_off_site(tmp_path: Path) -> None:
    log = Log(tmp_path, 30, checkpoint_every=10)
    old = tmp_path / "old"
    shutil.copytree(log.folder, old)
    for i in range(20):
        log.log.record("restore.completed", "cli:root", {"i": i})
    head = log.log.checkpoint()
    offsite = {"offsite": Offsite(head["seq"], head["head"][:32])}
    assert log.verify(offsite=offsite).ok  # the twin
    shutil.rmtree(log.folder)
    shutil.copytree(old, log.folder)  # both files rolled back together: locally consistent
    assert log.verify().ok
    r = log.verify(offsite=offsite)
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 30, "rollback")


def test_truncate_then_resume(tmp_path: Path) -> None:
    log = Log(tmp_path, 40, checkpoint_every=0)
    log.write(log.lines()[:30])
    log.log.record("backup.completed", "daemon", {"after": "truncation"})  # writer resumes
    lines = log.lines()
    assert json.loads(lines[30])["kind"] == "audit.tampered"  # the writer said so itself
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 30, "sequence")


def test_remac_with_the_current_key(log: Log) -> None:
    state = json.loads(key_state_path(log.state).read_text())
    stolen = bytes.fromhex(state["key"])  # today's key, as a thief would find it
    lines = log.lines()
    rec = json.loads(lines[10])
    rec["data"]["target"] = "forged"
    lines[10] = chain.encode(rec["seq"], rec["time"], rec["prev"], kind=rec["kind"],
                             actor=rec["actor"], data=rec["data"], key=stolen)
    # re-chain everything after it, as a careful forger would
    for i in range(11, len(lines)):
        r2 = json.loads(lines[i])
        lines[i] = chain.encode(r2["seq"], r2["time"], chain.line_hash(lines[i - 1]),
                                kind=r2["kind"], actor=r2["actor"], data=r2["data"],
                                key=stolen)
    log.write(lines)
    r = log.verify()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 10, "mac")


def test_crash_between_log_and_key_write_recovers(tmp_path: Path) -> None:
    log = Log(tmp_path, 5)
    before = key_state_path(log.state).read_bytes()
    log.log.record("x", "y", {})
    key_state_path(log.state).write_bytes(before)  # the key write "did not happen"
    log.log.record("z", "y", {})
    assert log.verify().ok
    with log.path.open("ab") as f:
        f.write(b'{"seq":7,"time":"cut')  # a line cut by a crash before its fsync
    log.log.record("after", "y", {})
    kinds = [json.loads(x)["kind"] for x in log.lines()]
    assert kinds[-2:] == ["audit.partial_line_dropped", "after"]
    assert log.verify().ok


def test_rotation_keeps_the_chain(tmp_path: Path) -> None:
    log = Log(tmp_path, 0)
    log.log.rotate_bytes = 4000
    log.log.append([Item("k", "a", {"i": i}) for i in range(200)])
    for i in range(100):
        log.log.record("k", "a", {"i": i})
    assert len(list(log.folder.glob("audit-*.jsonl"))) >= 2
    r = log.verify()
    assert r.ok and r.records == 300
    victim = sorted(log.folder.glob("audit-*.jsonl"))[0]
    victim.unlink()
    assert not log.verify().ok


def test_bit_flip_sweep_every_flip_caught(tmp_path: Path) -> None:
    """journald-style: flip every bit in two ranges of a 6,000-record log; none may verify.

    The tail range is checked by resuming the verifier at record 5,990 (what the daemon's
    incremental check does), so each of the 3,200 flips costs ten records, not 6,000.
    """
    log = Log(tmp_path, 0)
    log.log.append([Item("backup.completed", "daemon", {"i": i}) for i in range(6000)])
    log.log.checkpoint()
    data = log.path.read_bytes()
    assert log.verify().ok
    lines = data.split(b"\n")[:-1]
    cut = sum(len(x) + 1 for x in lines[:5990])
    start = chain.ChainState(5990, chain.line_hash(lines[5989]), chain.key_at(log.k0, 5990))
    tail_file = tmp_path / "tail.jsonl"

    def tail_ok(buf: bytes) -> bool:
        tail_file.write_bytes(buf)
        return verify(log.folder, public_key=log.public, log_file=tail_file, start=start).ok

    assert tail_ok(data[cut:])  # the untouched twin of every flip below
    undetected = flips = 0
    for pos in range(len(data) - 400, len(data)):  # the last records: no successor helps
        for bit in range(8):
            buf = bytearray(data[cut:])
            buf[pos - cut] ^= 1 << bit
            flips += 1
            undetected += tail_ok(bytes(buf))
    for pos in range(0, 300):  # the head, through the whole file
        for bit in range(8):
            buf = bytearray(data)
            buf[pos] ^= 1 << bit
            log.path.write_bytes(bytes(buf))
            flips += 1
            undetected += log.verify().ok
    assert flips == 5600 and undetected == 0
    log.path.write_bytes(data)
    assert log.verify().ok
