"""Sealed log files on real files: every tampering that must be caught has an untouched twin
that passes (append, logrotate with and without compression, copytruncate)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from minimal_config import MINIMAL_TOML

from secops.config.loader import load_config
from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.logs.journal import journal_check, parse_verify
from secops.logs.seal import (
    CHUNK,
    FileStatus,
    VerifyReport,
    check_file,
    load_seals,
    run_periodic,
    seal,
    seal_paths,
    verify,
)

CONFIG = MINIMAL_TOML + """\
[logs]
seal = [{seal}]
journald = "{journald}"
"""


def line(i: int) -> bytes:
    return (f"Mar 15 07:{i // 60 % 60:02d}:{i % 60:02d} tanky sshd[{1000 + i}]: Accepted "
            f"publickey for can-bo from 10.0.0.{i % 250} port {40000 + i} ssh2\n").encode()


def lines(start: int, n: int) -> bytes:
    return b"".join(line(i) for i in range(start, start + n))


def make_config(tmp: Path, seal_entries: list[str], journald: str = "off") -> Config:
    (tmp / "data").mkdir(exist_ok=True)
    text = CONFIG.format(seal=", ".join(f'"{s}"' for s in seal_entries), journald=journald)
    (tmp / "secops.toml").write_text(text, encoding="utf-8")
    return load_config(tmp / "secops.toml")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """``logs/auth.log`` with 100 lines (about 9 KiB: more than the 4 KiB identity)."""
    p = tmp_path / "logs" / "auth.log"
    p.parent.mkdir()
    p.write_bytes(lines(0, 100))
    return p


@pytest.fixture
def cfg(tmp_path: Path, log: Path) -> Config:
    return make_config(tmp_path, ["logs/auth.log"])


def only(report: VerifyReport) -> FileStatus:
    assert len(report.files) == 1
    return report.files[0]


def append(p: Path, data: bytes) -> None:
    with p.open("ab") as f:
        f.write(data)


def edit_in_place(p: Path, old: bytes, new: bytes) -> None:
    """What an intruder does with an editor that keeps the inode (same length or not)."""
    data = p.read_bytes()
    assert old in data
    with p.open("r+b") as f:
        f.seek(0)
        f.write(data.replace(old, new))
        f.truncate()


def logrotate(p: Path, compress: str | None = None, suffix: str = ".1") -> Path:
    """``create`` rotation: rename, new empty file, optionally compress the old one."""
    rotated = p.with_name(p.name + suffix)
    p.rename(rotated)
    p.write_bytes(b"")
    if compress is None:
        return rotated
    packer: dict[str, Callable[[bytes], bytes]] = {
        "gz": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}
    packed = rotated.with_name(rotated.name + "." + compress)
    packed.write_bytes(packer[compress](rotated.read_bytes()))
    rotated.unlink()
    return packed


# -- the untouched twins -------------------------------------------------------------------

def test_unchanged_and_appended_logs_pass(cfg: Config, log: Path) -> None:
    report = seal(cfg)
    assert [s.path for s in report.files] == [str(log)] and not report.missing
    assert report.recorded is False  # no audit key before `secops init`
    assert only(verify(cfg)).status == "ok"
    append(log, lines(100, 5))
    st = only(verify(cfg))
    assert (st.status, st.detail) == ("ok", f"grew by {len(lines(100, 5))} bytes")
    assert verify(cfg).ok


def test_small_log_under_4_kib_appended_passes(tmp_path: Path) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(line(0))
    cfg = make_config(tmp_path, ["small.log"])
    seal(cfg)
    append(small, lines(1, 80))  # grows past 4 KiB: the identity covers the sealed bytes only
    assert only(verify(cfg)).status == "ok"
    logrotate(small, "gz")
    assert only(verify(cfg)).status == "rotated"


def test_large_log_is_hashed_in_chunks(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    data = lines(0, 3 * CHUNK // len(line(0)) + 7)
    big.write_bytes(data)
    cfg = make_config(tmp_path, ["big.log"])
    seal(cfg)
    append(big, line(1))
    assert only(verify(cfg)).status == "ok"
    target = line(CHUNK // len(line(0)) + 3)
    edit_in_place(big, target, target.replace(b"Accepted", b"Rejected"))
    assert only(verify(cfg)).status == "edited"


# -- what must be caught -------------------------------------------------------------------

def test_edited_sealed_line_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    edit_in_place(log, line(50), b"")           # the intruder's login, gone
    st = only(verify(cfg))
    assert st.status in ("edited", "truncated") and st.problem
    assert not verify(cfg).ok


def test_same_length_edit_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    edit_in_place(log, b"10.0.0.50 ", b"10.0.0.99 ")
    st = only(verify(cfg))
    assert st.status == "edited" and st.problem


def test_edit_of_appended_but_unsealed_tail_is_not_seen(cfg: Config, log: Path) -> None:
    """The documented limit: only the sealed prefix is protected."""
    seal(cfg)
    append(log, line(500))
    edit_in_place(log, line(500), line(501))
    assert only(verify(cfg)).status == "ok"


def test_rewrite_with_sed_i_is_caught_and_a_faithful_copy_passes(cfg: Config, log: Path
                                                               ) -> None:
    seal(cfg)
    tmp = log.with_name("auth.log.tmp-rewrite")
    tmp.write_bytes(log.read_bytes() + line(100))
    os.replace(tmp, log)                       # new inode, sealed content intact
    assert only(verify(cfg)).status == "ok"
    seal(cfg)
    tmp.write_bytes(log.read_bytes().replace(line(60), b"") + lines(300, 2))
    os.replace(tmp, log)                       # new inode, a sealed line removed (sed -i)
    st = only(verify(cfg))
    assert st.status == "edited" and "new file" in st.detail
    tmp.write_bytes(log.read_bytes().replace(lines(61, 3), b""))
    os.replace(tmp, log)                       # and shorter than what was sealed
    assert only(verify(cfg)).status == "truncated"


def test_truncation_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    with log.open("r+b") as f:
        f.truncate(2000)
    st = only(verify(cfg))
    assert st.status == "truncated" and st.problem


def test_truncation_to_zero_without_a_copy_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    log.write_bytes(b"")                       # `> /var/log/auth.log`
    append(log, line(100))
    assert only(verify(cfg)).status == "truncated"


def test_deletion_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    log.unlink()
    st = only(verify(cfg))
    assert st.status == "deleted" and st.problem


def test_deletion_with_an_unrelated_rotated_file_is_caught(cfg: Config, log: Path) -> None:
    log.with_name("auth.log.1").write_bytes(lines(1000, 100))   # an older generation
    seal(cfg)
    log.unlink()
    assert only(verify(cfg)).status == "deleted"


def test_new_file_with_the_sealed_content_nowhere_is_a_rotation_anomaly(cfg: Config,
                                                                      log: Path) -> None:
    seal(cfg)
    other = log.with_name("other")
    other.write_bytes(lines(2000, 3))
    os.replace(other, log)    # a new file in place; the sealed one gone without a copy
    st = only(verify(cfg))
    assert st.status == "rotation_anomaly" and st.problem


def test_symlink_at_a_sealed_path_is_caught(cfg: Config, log: Path, tmp_path: Path) -> None:
    seal(cfg)
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_bytes(log.read_bytes())    # even with the same content
    log.unlink()
    log.symlink_to(elsewhere)
    st = only(verify(cfg))
    assert st.status == "symlink" and st.problem and str(elsewhere) in st.detail


def test_fifo_at_a_sealed_path_is_caught_without_blocking(cfg: Config, log: Path) -> None:
    seal(cfg)
    log.unlink()
    os.mkfifo(log)
    st = only(verify(cfg))
    assert st.status == "not_regular" and st.problem


def test_symlink_at_seal_time_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real.log").write_bytes(line(0))
    (tmp_path / "link.log").symlink_to(tmp_path / "real.log")
    cfg = make_config(tmp_path, ["link.log"])
    report = seal(cfg)
    assert not report.files and [r.status for r in report.refused] == ["symlink"]


# -- logrotate, accepted; and tampering hidden inside a rotation, caught --------------------

@pytest.mark.parametrize("compress", [None, "gz", "xz", "bz2"])
def test_logrotate_rotation_passes(cfg: Config, log: Path, compress: str | None) -> None:
    seal(cfg)
    append(log, line(100))
    rotated = logrotate(log, compress)
    append(log, line(101))
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("rotated", str(rotated))
    assert verify(cfg).ok


def test_dateext_rotation_and_older_generations_pass(cfg: Config, log: Path) -> None:
    log.with_name("auth.log.2.gz").write_bytes(gzip.compress(lines(3000, 50)))
    seal(cfg)
    rotated = logrotate(log, "gz", suffix="-20260315")
    assert only(verify(cfg)).rotated_to == str(rotated)


def test_two_rotations_between_checks_pass(cfg: Config, log: Path) -> None:
    """delaycompress: the sealed content is two generations back, compressed."""
    seal(cfg)
    first = logrotate(log)                      # auth.log.1
    append(log, lines(200, 10))
    first.rename(log.with_name("auth.log.2"))
    logrotate(log)                              # the new auth.log -> auth.log.1
    packed = log.with_name("auth.log.2.gz")
    packed.write_bytes(gzip.compress(log.with_name("auth.log.2").read_bytes()))
    log.with_name("auth.log.2").unlink()
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("rotated", str(packed))


def test_copytruncate_passes_and_truncation_without_copy_does_not(cfg: Config, log: Path
                                                                 ) -> None:
    seal(cfg)
    shutil.copyfile(log, log.with_name("auth.log.1"))
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, line(100))
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("rotated", str(log.with_name("auth.log.1")))
    assert "copytruncate" in st.detail


def test_copytruncate_with_an_edited_copy_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    copy = log.with_name("auth.log.1")
    copy.write_bytes(log.read_bytes().replace(b"10.0.0.80 ", b"10.0.0.99 "))
    with log.open("r+b") as f:
        f.truncate(0)
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("edited", str(copy))
    copy.write_bytes(copy.read_bytes().replace(line(81), b""))   # a line removed: shorter
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("truncated", str(copy)) and st.problem


def test_rotation_with_the_old_content_edited_before_compression_is_caught(
        cfg: Config, log: Path) -> None:
    seal(cfg)
    rotated = logrotate(log)
    rotated.write_bytes(rotated.read_bytes().replace(line(70), line(70).replace(b"10.", b"11.")))
    packed = rotated.with_name("auth.log.1.gz")
    packed.write_bytes(gzip.compress(rotated.read_bytes()))
    rotated.unlink()
    st = only(verify(cfg))
    assert (st.status, st.rotated_to) == ("edited", str(packed)) and st.problem


def test_rotated_copy_missing_its_end_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    data = log.read_bytes()
    logrotate(log)
    log.with_name("auth.log.1").unlink()
    log.with_name("auth.log.1.gz").write_bytes(gzip.compress(data[: len(data) - 500]))
    assert only(verify(cfg)).status == "truncated"


def test_damaged_compressed_copy_is_caught(cfg: Config, log: Path) -> None:
    seal(cfg)
    data = gzip.compress(log.read_bytes())
    log.rename(log.with_name("auth.log.1"))
    log.with_name("auth.log.1").unlink()
    log.with_name("auth.log.1.gz").write_bytes(data[: len(data) // 2])
    assert only(verify(cfg)).problem


# -- configuration and state -----------------------------------------------------------------

def test_missing_file_at_seal_time_is_reported_not_fatal(tmp_path: Path, log: Path) -> None:
    cfg = make_config(tmp_path, ["logs/auth.log", "logs/nope.log", "/var/empty/none.log"])
    report = seal(cfg)
    assert report.missing == [str(tmp_path / "logs" / "nope.log"), "/var/empty/none.log"]
    statuses = [f.status for f in verify(cfg).files]
    assert statuses == ["ok", "missing", "missing"]
    assert verify(cfg).ok
    (tmp_path / "logs" / "nope.log").write_bytes(line(1))
    assert verify(cfg).files[1].status == "unsealed" and verify(cfg).ok


def test_seal_paths_resolve_against_the_config_folder(tmp_path: Path, log: Path) -> None:
    cfg = make_config(tmp_path, ["logs/auth.log", "./logs/../logs/auth.log", "/abs/x.log"])
    assert seal_paths(cfg) == [str(log), "/abs/x.log"]


def test_seal_replaces_the_previous_seal(cfg: Config, log: Path) -> None:
    seal(cfg)
    log.write_bytes(b"")                       # an acknowledged reset: seal again
    seal(cfg)
    assert load_seals(cfg.paths.state_dir)[str(log)].size == 0
    assert only(verify(cfg)).status == "ok"


def test_unreadable_file_is_reported_not_fatal(cfg: Config, log: Path) -> None:
    """Root reads any file: as root, the check runs with the file-system uid of nobody
    (setfsuid drops the DAC-override capabilities for file access, then restores them)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    seal(cfg)
    sealed = load_seals(cfg.paths.state_dir)[str(log)]
    log.chmod(0)
    root = os.geteuid() == 0
    try:
        if root:
            libc.setfsuid(65534)
        status = check_file(str(log), sealed)[0].status
    finally:
        if root:
            libc.setfsuid(0)
        log.chmod(0o644)
    assert status == "unreadable"
    assert check_file(str(log), sealed)[0].status == "ok"  # the twin, readable again


def test_periodic_run_seals_first_then_raises_each_tampering_once(cfg: Config, log: Path
                                                                  ) -> None:
    first = run_periodic(cfg)
    assert first.ok and only(first).status == "unsealed"
    assert str(log) in load_seals(cfg.paths.state_dir)
    append(log, line(100))
    assert run_periodic(cfg).ok
    edit_in_place(log, line(10), b"")
    report = run_periodic(cfg)
    assert not report.ok and only(report).status in ("edited", "truncated")
    assert "edited" in str(report) or "truncated" in str(report)
    assert run_periodic(cfg).ok                # resealed: raised once
    db = StateDB(Path(cfg.paths.state_dir) / "state.db")
    try:
        events = [e for e in db.recent_events() if e["kind"] == "logs.tampered"]
    finally:
        db.close()
    assert len(events) == 1
    assert events[0]["severity"] == "high" and events[0]["source"] == "daemon"
    assert events[0]["details"]["paths"] == [str(log)]
    assert events[0]["details"]["problems"][0]["path"] == str(log)


def test_periodic_run_accepts_a_rotation(cfg: Config, log: Path) -> None:
    run_periodic(cfg)
    logrotate(log, "gz")
    append(log, line(100))
    assert only(run_periodic(cfg)).status == "rotated"
    append(log, line(101))
    assert only(run_periodic(cfg)).status == "ok"   # the new file was sealed


# -- journald --------------------------------------------------------------------------------

def test_parse_verify_pass_fail_and_sealed_without_key() -> None:
    out = ("PASS: /var/log/journal/m/system@a-1-2.journal\n"
           "\x1b[0;1;39m390f60: Data object references invalid entry at 394950\x1b[0m\n"
           "File corruption detected at /var/log/journal/m/user-1000@b-3-4.journal:3754024 "
           "(of 8388608 bytes, 44%).\n"
           "\x1b[0;1;38;5;185mFAIL: /var/log/journal/m/user-1000@b-3-4.journal (Bad message)"
           "\x1b[0m\n"
           "Journal file /var/log/journal/m/system.journal has sealing enabled but "
           "verification key has not been passed using --verify-key=.\n"
           "FAIL: /var/log/journal/m/system.journal (Required key not available)\n")
    r = parse_verify(out, 1)
    assert r["ran"] and not r["ok"] and r["passed"] == 1 and r["sealed"]
    assert r["failed"] == ["/var/log/journal/m/user-1000@b-3-4.journal"]
    assert r["reasons"][r["failed"][0]] == "Bad message"
    assert r["unverified"] == ["/var/log/journal/m/system.journal"]
    problems = VerifyReport(journal=r).problems
    assert [p["problem"] for p in problems] == ["journal_failed"]


def test_parse_verify_untouched_twin_and_errors() -> None:
    ok = parse_verify("PASS: /var/log/journal/m/system.journal\n"
                      "PASS: /var/log/journal/m/user-1000.journal\n", 0)
    assert ok["ok"] and ok["passed"] == 2 and not ok["failed"] and not ok["sealed"]
    only_key = parse_verify("FAIL: /j/system.journal (Required key not available)\n", 1)
    assert only_key["ok"] and only_key["unverified"] == ["/j/system.journal"]
    empty = parse_verify("No journal files were found.\n", 0)
    assert empty["ok"] and empty["passed"] == 0 and "No journal files" in empty["detail"]
    broken = parse_verify("Failed to open files: Permission denied\n", 1)
    assert not broken["ok"] and "Permission denied" in broken["error"]


def test_journal_check_off_and_missing_journalctl(tmp_path: Path) -> None:
    off = journal_check(make_config(tmp_path, [], "off"))
    assert off["ran"] is False and off["ok"] is True
    on = journal_check(make_config(tmp_path, [], "on"),
                       journalctl=str(tmp_path / "no-journalctl"))
    assert on["ran"] is False and on["ok"] is False and on["error"]
    auto = journal_check(make_config(tmp_path, [], "auto"), journal_dir=tmp_path / "none")
    assert auto["ran"] is False and auto["ok"] is True


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="no journalctl here")
def test_journal_check_runs_the_real_journalctl(tmp_path: Path) -> None:
    r = journal_check(make_config(tmp_path, [], "on"))
    assert {"ran", "ok", "passed", "failed", "unverified", "sealed", "detail"} <= set(r)
    assert isinstance(r["ran"], bool) and isinstance(r["failed"], list)
    assert isinstance(r["detail"], str) and r["detail"]
