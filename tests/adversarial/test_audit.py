"""The audit log against someone who has root on the server today: the log, the MAC key
state, the checkpoint key state and the office keys are all theirs to read and rewrite.

What they cannot have: K_0 (in escrow only), the checkpoint keys already used (destroyed),
the office's audit-root.pub the police were handed, and the tags on the append-only target.
Every forgery below passes the old verifier (the start state was the Verifier's own state,
so every checkpoint below the end counted as "already verified"; checkpoints were signed by
the office key, which root holds); each has an untouched twin that verifies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secops.audit import chain
from secops.audit import checkpoints as cps
from secops.audit.log import (
    AuditLog,
    audit_root_path,
    checkpoint_key_path,
    ensure_keys,
    initial_key_path,
    key_state_path,
    read_checkpoint_state,
)
from secops.audit.verify import Offsite, Report, check_key_state, verify, verify_excerpt
from secops.keys.signature import load_public_key
from secops.keys.store import ensure_ed25519, load_office_key
from secops.layout import StateDir
from secops.reports.excerpt import audit_excerpt, check_excerpt


class Server:
    """An office's audit folder and keys, written by the real writer."""

    def __init__(self, root: Path, records: int = 40, checkpoint_every: int = 10) -> None:
        self.state = root / "state"
        sd = StateDir(self.state)
        ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
        ensure_keys(self.state)
        self.k0 = bytes.fromhex(initial_key_path(self.state).read_text().strip())
        self.office_pub = load_public_key(sd.ed25519_pub)
        self.root_pub = load_public_key(audit_root_path(self.state))  # the police's copy
        self.log = AuditLog(self.state, "tan-ky")
        self.log.record("audit.genesis", "cli:root", {"office": "tan-ky"})
        self.log.checkpoint()
        for i in range(1, records):
            self.log.record("backup.completed", "daemon", {"target": "local", "n": i})
            if i % checkpoint_every == 0:
                self.log.checkpoint()
        self.folder = sd.audit

    @property
    def path(self) -> Path:
        return self.folder / "audit.jsonl"

    @property
    def cp_path(self) -> Path:
        return self.folder / "checkpoints.jsonl"

    def lines(self) -> list[bytes]:
        return self.path.read_bytes().split(b"\n")[:-1]

    def write(self, lines: list[bytes]) -> None:
        self.path.write_bytes(b"".join(x + b"\n" for x in lines))

    def checkpoint_lines(self) -> list[bytes]:
        return self.cp_path.read_bytes().split(b"\n")[:-1]

    def vouched(self) -> list[int]:
        return [json.loads(x)["seq"] for x in self.checkpoint_lines()]

    def police(self, **kw: object) -> Report:
        """A copy on the police's machine: office public key + pinned root, no escrow."""
        return verify(self.folder, public_key=self.office_pub, roots=[self.root_pub],
                      **kw)  # type: ignore[arg-type]

    def on_server(self, **kw: object) -> Report:
        report = self.police(**kw)
        check_key_state(report, self.state)
        return report


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def _rechain(lines: list[bytes], start: int, key: bytes | None = None) -> list[bytes]:
    """Recompute every ``prev`` from ``start`` on; keep each MAC (stale) unless ``key``
    (the MAC key the attacker holds) is given."""
    out = list(lines)
    for i in range(start, len(out)):
        rec = json.loads(out[i])
        prev = chain.line_hash(out[i - 1]) if i else chain.GENESIS_PREV
        if key is not None:
            out[i] = chain.encode(rec["seq"], rec["time"], prev, kind=rec["kind"],
                                  actor=rec["actor"], data=rec["data"], key=key)
        else:
            rec["prev"] = prev
            out[i] = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
    return out


def _edit(lines: list[bytes], i: int) -> list[bytes]:
    rec = json.loads(lines[i])
    rec["data"]["target"] = "forged"
    out = list(lines)
    out[i] = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
    return out


def test_untouched_twin_verifies_everywhere(server: Server) -> None:
    r = server.on_server()
    assert r.ok and r.checkpoints_verified == len(server.vouched()) == 4
    assert r.root_pinned and r.root_certified and r.unvouched_from == 31  # after cp 30
    assert verify(server.folder, initial_key=server.k0, public_key=server.office_pub).ok


def test_rewritten_record_rechained_with_stale_macs(server: Server) -> None:
    """Issue 12.1: record 15 rewritten, every later prev recomputed, MACs left stale,
    checkpoints.jsonl untouched. Exited 0 before, on the server and on a police copy."""
    server.write(_rechain(_edit(server.lines(), 15), 16))
    for report in (server.police(), server.on_server(),
                   verify(server.folder)):  # even with no key at all: the heads differ
        assert (report.ok, report.first_bad_seq, report.problem) == (False, 20, "checkpoint")
    assert verify(server.folder, initial_key=server.k0).problem == "mac"


def test_remac_with_the_current_key_caught_without_escrow(server: Server) -> None:
    stolen = bytes.fromhex(json.loads(key_state_path(server.state).read_text())["key"])
    server.write(_rechain(_edit(server.lines(), 5), 5, key=stolen))
    r = server.police()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 10, "checkpoint")


def test_truncate_then_resume_caught_without_escrow(server: Server) -> None:
    """Cut the log back to record 25, wind the MAC key state back to match (with the key
    the attacker has), and let the writer carry on: the checkpoints at 30 vouch for other
    records."""
    stolen = json.loads(key_state_path(server.state).read_text())["key"]
    server.write(server.lines()[:25])
    key_state_path(server.state).write_text(json.dumps({"next_seq": 25, "key": stolen}))
    for i in range(20):
        server.log.record("backup.completed", "daemon", {"resumed": i})
    r = server.police()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, 30, "checkpoint")


def test_checkpoints_resigned_with_the_office_key(server: Server) -> None:
    """The attacker holds the office Ed25519 key: edit record 12, re-chain, and re-make the
    whole checkpoint chain from a fresh root certified by the office key. Only the pinned
    root (the police's audit-root.pub) or the off-site root tag can tell."""
    server.write(_rechain(_edit(server.lines(), 12), 13))
    office = load_office_key(StateDir(server.state).ed25519_key)
    lines = server.lines()
    key = Ed25519PrivateKey.generate()
    prev, forged = cps.ZERO, []
    for n, seq in enumerate(server.vouched()):
        nxt = Ed25519PrivateKey.generate()
        line = cps.encode(n=n, seq=seq, head=chain.line_hash(lines[seq]),
                          time="2026-03-15T07:00:00Z", log="tan-ky", prev=prev, signer=key,
                          next_key=nxt, office_key=office if n == 0 else None)
        forged.append(line)
        prev, key = cps.line_hash(line), nxt
    server.cp_path.write_bytes(b"".join(x + b"\n" for x in forged))
    unpinned = verify(server.folder, public_key=server.office_pub)
    assert unpinned.ok and not unpinned.root_pinned  # says so: "not pinned"
    r = server.police()
    assert (r.ok, r.problem) == (False, "checkpoint") and "pinned" in (r.detail or "")
    true_root = cps.key_id(cps.raw_public(server.root_pub))
    r = verify(server.folder, public_key=server.office_pub,
               offsite={"offsite": Offsite(None, None, true_root)})
    assert (r.ok, r.problem) == (False, "rollback")


def test_last_checkpoint_resigned_with_the_current_key(server: Server) -> None:
    """The attacker holds the key of the NEXT checkpoint: drop the last checkpoint line and
    sign a replacement (for an edited record 35) with the key they have."""
    server.write(_rechain(_edit(server.lines(), 35), 36))
    lines = server.checkpoint_lines()
    _, key, _ = read_checkpoint_state(checkpoint_key_path(server.state))
    last = cps.parse(lines[-1], len(lines))
    forged = cps.encode(n=last.n, seq=last.seq, head=chain.line_hash(server.lines()[last.seq]),
                        time=last.time, log="tan-ky", prev=last.prev, signer=key,
                        next_key=Ed25519PrivateKey.generate())
    server.cp_path.write_bytes(b"".join(x + b"\n" for x in [*lines[:-1], forged]))
    r = server.police()
    assert (r.ok, r.first_bad_seq, r.problem) == (False, last.seq, "checkpoint")
    assert "BAD SIGNATURE" in (r.detail or "")


def test_checkpoints_cut_off_with_the_records(server: Server) -> None:
    """Records and checkpoints both cut back to record 25: the log is locally consistent,
    but the checkpoint key on the server no longer follows the last line, and the next
    checkpoint the writer makes cannot link to it."""
    server.write(server.lines()[:26])
    kept = [x for x in server.checkpoint_lines() if json.loads(x)["seq"] <= 25]
    server.cp_path.write_bytes(b"".join(x + b"\n" for x in kept))
    mac = json.loads(key_state_path(server.state).read_text())
    key_state_path(server.state).write_text(json.dumps({"next_seq": 26, "key": mac["key"]}))
    assert server.police().ok  # a copy of both, cut together, is consistent...
    r = server.on_server()
    assert (r.ok, r.problem) == (False, "checkpoint")  # ...but not with the key state
    server.log.checkpoint()  # the writer goes on: the link it makes is broken for good
    r = server.police()
    assert (r.ok, r.problem) == (False, "checkpoint")
    assert "audit.tampered" in [json.loads(x)["kind"] for x in server.lines()]


def test_checkpoint_key_state_deleted(server: Server) -> None:
    checkpoint_key_path(server.state).unlink()
    assert server.police().ok
    r = server.on_server()
    assert (r.ok, r.problem) == (False, "checkpoint") and "gone" in (r.detail or "")


def test_crash_between_checkpoint_line_and_key_state(server: Server) -> None:
    """The honest twin of the above: a crash after the line's fsync, before the key state
    moved on, is reconciled by the next checkpoint (no false alarm)."""
    state = checkpoint_key_path(server.state)
    before = json.loads(state.read_text())
    server.log.record("x", "daemon", {})
    server.log.checkpoint()
    written = json.loads(server.checkpoint_lines()[-1])
    after = json.loads(state.read_text())
    # what the state file held between the line's fsync and the final replace
    state.write_text(json.dumps({"n": before["n"], "key": before["key"],
                                 "pending": after["key"]}))
    assert server.on_server().ok
    server.log.record("y", "daemon", {})
    server.log.checkpoint()
    assert json.loads(server.checkpoint_lines()[-1])["n"] == written["n"] + 1
    assert server.on_server().ok


def test_excerpt_checked_as_an_excerpt(server: Server, tmp_path: Path) -> None:
    """Issue 13.6's twin here: a genuine excerpt verifies with `audit verify --log audit/`
    logic (not "truncated"/"sequence"), and a rewritten record inside it does not."""
    import time

    server.log.record("incident.opened", "playbook:x", {"incident": "INC-1"})
    for i in range(5):
        server.log.record("step", "playbook:x", {"incident": "INC-1", "i": i})
    ex = audit_excerpt(server.state, "tan-ky", "INC-1", time.time() - 3600, time.time())
    folder = tmp_path / "bundle" / "audit"
    folder.mkdir(parents=True)
    (folder / "audit-excerpt.jsonl").write_bytes(b"".join(x + b"\n" for x in ex.lines))
    (folder / "checkpoints.jsonl").write_bytes(b"".join(x + b"\n" for x in ex.checkpoints))
    (folder / "excerpt.json").write_text(json.dumps(ex.meta))
    pub = StateDir(server.state).ed25519_pub
    r = verify_excerpt(folder, public_key=server.office_pub, roots=[server.root_pub])
    assert r.ok and r.root_pinned, r.detail
    assert check_excerpt(folder, pub, [audit_root_path(server.state)])[0]
    lines = (folder / "audit-excerpt.jsonl").read_bytes().split(b"\n")[:-1]
    start = ex.meta["start_seq"]
    edited = _rechain(_edit(lines, 2), 3)
    # re-chaining inside the excerpt: the prev of its first line is fixed by excerpt.json
    (folder / "audit-excerpt.jsonl").write_bytes(b"".join(x + b"\n" for x in edited))
    r = verify_excerpt(folder, public_key=server.office_pub, roots=[server.root_pub])
    assert not r.ok and r.problem in ("checkpoint", "chain"), r
    assert not check_excerpt(folder, pub)[0]
    assert r.first_bad_seq is not None and r.first_bad_seq >= start


# --- the property: any change at or below a checkpoint is caught without the escrow -------

MUTATIONS = ("edit", "insert", "delete", "swap", "truncate")


@st.composite
def attacks(draw: st.DrawFn) -> tuple[int, int, str, int, bool, str]:
    records = draw(st.integers(8, 40))
    every = draw(st.integers(2, 9))
    kind = draw(st.sampled_from(MUTATIONS))
    at = draw(st.integers(1, records - 2))
    rechain = draw(st.booleans())
    resign = draw(st.sampled_from(["none", "append", "replace-last", "reroot"]))
    return records, every, kind, at, rechain, resign


def _mutate(lines: list[bytes], kind: str, at: int) -> list[bytes]:
    out = list(lines)
    if kind == "edit":
        return _edit(out, at)
    if kind == "insert":
        rec = json.loads(out[at])
        out.insert(at, chain.encode(rec["seq"], rec["time"], rec["prev"], kind="forged",
                                    actor="x", data={}, key=b"k" * 32))
        return out
    if kind == "delete":
        del out[at]
        return out
    if kind == "swap":
        out[at], out[at + 1] = out[at + 1], out[at]
        return out
    return out[:at]


def _resign(server: Server, how: str) -> None:
    """What an attacker with the office key and today's checkpoint key can do."""
    lines = server.lines()
    cp_lines = server.checkpoint_lines()
    office = load_office_key(StateDir(server.state).ed25519_key)
    head_seq = len(lines) - 1
    if how == "append":
        server.log.checkpoint()
    elif how == "replace-last":
        _, key, _ = read_checkpoint_state(checkpoint_key_path(server.state))
        last = cps.parse(cp_lines[-1], len(cp_lines))
        line = cps.encode(n=last.n, seq=head_seq, head=chain.line_hash(lines[-1]),
                          time=last.time, log="tan-ky", prev=last.prev, signer=key,
                          next_key=Ed25519PrivateKey.generate(),
                          office_key=office if last.n == 0 else None)
        server.cp_path.write_bytes(b"".join(x + b"\n" for x in [*cp_lines[:-1], line]))
    elif how == "reroot":
        key = Ed25519PrivateKey.generate()
        line = cps.encode(n=0, seq=head_seq, head=chain.line_hash(lines[-1]),
                          time="2026-03-15T07:00:00Z", log="tan-ky", prev=cps.ZERO,
                          signer=key, next_key=Ed25519PrivateKey.generate(),
                          office_key=office)
        server.cp_path.write_bytes(line + b"\n")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attacks())
def test_any_change_at_or_below_a_checkpoint_is_caught(tmp_path_factory: pytest.TempPathFactory,
                                                       attack: tuple[int, int, str, int, bool,
                                                                     str]) -> None:
    records, every, kind, at, rechain, resign = attack
    server = Server(tmp_path_factory.mktemp("prop"), records, every)
    assert server.police().ok  # the untouched twin of this very log
    last_vouched = max(server.vouched())
    lines = _mutate(server.lines(), kind, at)
    if rechain and kind != "truncate":
        lines = _rechain(lines, at)
    server.write(lines)
    if lines:
        _resign(server, resign)
    if at <= last_vouched:
        r = server.police()
        assert not r.ok, (attack, r.as_json())
    shutil.rmtree(server.state)


def test_offsite_anchor_round_trip() -> None:
    class Snap:
        def __init__(self, tags: list[str]) -> None:
            self.tags = tags

    from secops.audit.verify import offsite_anchor

    got = offsite_anchor([Snap(["audit:5:aa", "audit-root:r1"]), Snap(["audit:9:bb"])])
    assert got == Offsite(9, "bb", "r1", ((5, "aa"), (9, "bb")), frozenset({"r1"}))


def _genuine(server: Server, seq: int) -> tuple[int, str]:
    return seq, chain.line_hash(server.lines()[seq])[:32]


def test_every_offsite_anchor_is_checked_not_only_the_newest(server: Server) -> None:
    """Red team: after a whole-log rewrite one more backup tags a fresh anchor that matches;
    the older anchors on the append-only target still name the genuine records."""
    old = _genuine(server, 3)
    twin = Offsite(*_genuine(server, 39), anchors=(old, _genuine(server, 25)))
    assert verify(server.folder, offsite={"t": twin}).ok  # every genuine anchor matches
    server.write(_rechain(_edit(server.lines(), 2), 3))
    _resign(server, "reroot")  # checkpoints re-made from a new root (unpinned here)
    newest = _genuine(server, 39)  # made after the rewrite: matches the forged log
    only_newest = Offsite(*newest)
    assert verify(server.folder, offsite={"t": only_newest}).ok  # what was checked before
    every = Offsite(*newest, anchors=(old, newest))
    r = verify(server.folder, offsite={"t": every})
    assert (r.ok, r.problem) == (False, "rollback")


def test_two_roots_on_one_target_are_a_rewrite(server: Server) -> None:
    root = cps.key_id(cps.raw_public(server.root_pub))
    ok = Offsite(None, None, root, roots=frozenset({root}))
    assert verify(server.folder, offsite={"t": ok}).ok  # the twin
    mixed = Offsite(None, None, None, roots=frozenset({root, "0123456789abcdef"}))
    r = verify(server.folder, offsite={"t": mixed})
    assert (r.ok, r.problem) == (False, "rollback")


def test_an_excerpt_json_beside_a_log_does_not_hide_it(server: Server) -> None:
    from secops.audit.verify import is_excerpt

    genuine = server.lines()[:9]
    (server.folder / "audit-excerpt.jsonl").write_bytes(b"".join(x + b"\n" for x in genuine))
    (server.folder / "excerpt.json").write_text(json.dumps(
        {"start_seq": 0, "prev": chain.GENESIS_PREV, "end_seq": 8}))
    lines = server.lines()
    del lines[15]
    server.write(lines)
    assert not is_excerpt(server.folder)
    assert not server.police().ok
    # the twin: a bundle's audit/ folder (the excerpt files only) is an excerpt, and a rotated
    # log beside it makes it a log folder again
    bundle = server.folder.parent / "bundle-audit"
    bundle.mkdir()
    for name in ("audit-excerpt.jsonl", "excerpt.json", "checkpoints.jsonl"):
        (bundle / name).write_bytes((server.folder / name).read_bytes())
    assert is_excerpt(bundle)
    (bundle / "audit-2026-11.jsonl").write_bytes(b"")
    assert not is_excerpt(bundle)


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_a_log_without_any_checkpoint_fails(server: Server, how: str) -> None:
    """Red team: an emptied or deleted checkpoints.jsonl let any edit pass, root pinned."""
    server.write(_edit(server.lines(), 5))
    if how == "empty":
        server.cp_path.write_bytes(b"")
    else:
        server.cp_path.unlink()
    r = server.police()
    assert (r.ok, r.problem) == (False, "checkpoint")


@pytest.mark.parametrize("where", ["log", "checkpoints"])
def test_deeply_nested_lines_are_refused_not_a_crash(server: Server, where: str) -> None:
    """Red team: 200,000 nested brackets gave a RecursionError traceback."""
    bomb = b"[" * 200_000
    if where == "log":
        server.write([*server.lines()[:10], bomb])
    else:
        server.cp_path.write_bytes(server.cp_path.read_bytes() + bomb + b"\n")
    r = server.police()
    assert not r.ok and r.problem in ("malformed", "checkpoint")


# --- destroyed keys stay destroyed on the disk -------------------------------------------

def test_used_keys_cannot_be_carved_from_the_disk(tmp_path: Path) -> None:
    """Red team: key files replaced by rename left every used checkpoint key and MAC key in
    freed ext4 blocks; carved back from the raw device, they re-signed checkpoints 3-12 and
    a police copy verified. Key files are now overwritten in place: on a real ext4
    filesystem, no used key is left anywhere on the device."""
    import os
    import subprocess

    from conftest import skip_or_fail

    from integration.servers import find_binary

    if os.geteuid() != 0 or find_binary("mkfs.ext4") is None:
        skip_or_fail("needs root and mkfs.ext4 for a loop-mounted ext4 image")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    with image.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, timeout=120)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True, timeout=120)
    used: list[bytes] = []
    try:
        server = Server(mnt, records=0)
        for i in range(12):
            used.append(bytes.fromhex(json.loads(
                checkpoint_key_path(server.state).read_text())["key"]))
            used.append(bytes.fromhex(json.loads(
                key_state_path(server.state).read_text())["key"]))
            server.log.record("backup.completed", "daemon", {"i": i})
            server.log.checkpoint()
        current = {bytes.fromhex(json.loads(p.read_text())["key"])
                   for p in (checkpoint_key_path(server.state), key_state_path(server.state))}
        assert server.police().ok  # the untouched twin
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=120)
    raw = image.read_bytes()
    found = [k for k in used if k not in current and
             (k.hex().encode() in raw or k in raw)]
    assert found == [], f"{len(found)} used key(s) readable on the device"
