"""restic 0.14 failure classification against real stderr samples (tests/data/restic_stderr).

Each sample's first line is ``# exit=N restic=V cmd=...``; the expected kind is listed here,
next to the file name, so a new sample without an expectation fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secops.backup.classify import Failure, classify, essential_lines

SAMPLES = Path(__file__).parent.parent / "data" / "restic_stderr"

EXPECTED: dict[str, Failure | None] = {
    # None: restic succeeded (exit 0); nothing to classify.
    "local_locked_exclusive_backup": Failure.LOCKED,
    "local_locked_exclusive_snapshots": Failure.LOCKED,
    "local_locked_shared_backup_ok": None,
    "local_locked_shared_forget": Failure.LOCKED,
    "local_repo_missing": Failure.NO_REPOSITORY,
    "local_wrong_password": Failure.WRONG_PASSWORD,
    "rest_append_only_backup_with_stale_lock": None,
    "rest_append_only_forget": Failure.APPEND_ONLY_REFUSED,
    "rest_append_only_prune": Failure.APPEND_ONLY_REFUSED,
    "rest_append_only_unlock": None,
    "rest_append_only_unlock_remove_all": None,
    "rest_locked_exclusive_backup": Failure.LOCKED,
    "rest_locked_exclusive_snapshots": Failure.LOCKED,
    "rest_locked_shared_backup_ok": None,
    "rest_locked_shared_forget": Failure.LOCKED,
    "rest_repo_missing": Failure.NO_REPOSITORY,
    "rest_server_down": Failure.UNREACHABLE,
    "rest_server_down_backup": Failure.UNREACHABLE,
    "rest_server_down_during_backup": Failure.UNREACHABLE,
    "rest_server_never_listened": Failure.UNREACHABLE,
    "rest_server_restarted_during_backup": None,
    "rest_wrong_password": Failure.WRONG_PASSWORD,
    "s3_forget_allowed": None,
    "s3_locked_exclusive_backup": Failure.LOCKED,
    "s3_locked_exclusive_snapshots": Failure.LOCKED,
    "s3_locked_shared_backup_ok": None,
    "s3_locked_shared_forget": Failure.LOCKED,
    "s3_no_credentials": Failure.CREDENTIALS,
    "s3_repo_missing": Failure.NO_REPOSITORY,
    "s3_repo_missing_in_existing_bucket": Failure.NO_REPOSITORY,
    "s3_server_down": Failure.UNREACHABLE,
    "s3_server_down_during_backup": Failure.UNREACHABLE,
    "s3_unknown_access_key": Failure.CREDENTIALS,
    "s3_wrong_password": Failure.WRONG_PASSWORD,
    "s3_wrong_secret": Failure.CREDENTIALS,
    "s3_wrong_secret_init": Failure.CREDENTIALS,
    "sftp_forget_allowed": None,
    "sftp_host_key_mismatch": Failure.HOST_KEY_MISMATCH,
    # restic passes ssh's lines on unreliably; with none left only "EOF" remains, so the
    # engine checks the pinned host key itself before it runs restic.
    "sftp_host_key_mismatch_none_ssh_output": Failure.UNREACHABLE,
    "sftp_host_key_mismatch_partial_ssh_output": Failure.HOST_KEY_MISMATCH,
    "sftp_host_key_unknown": Failure.HOST_KEY_MISMATCH,
    "sftp_locked_exclusive_backup": Failure.LOCKED,
    "sftp_locked_exclusive_snapshots": Failure.LOCKED,
    "sftp_locked_shared_backup_ok": None,
    "sftp_locked_shared_forget": Failure.LOCKED,
    "sftp_repo_missing": Failure.NO_REPOSITORY,
    "sftp_server_down": Failure.UNREACHABLE,
    "sftp_server_down_during_backup": Failure.UNREACHABLE,
    "sftp_wrong_password": Failure.WRONG_PASSWORD,
}


def load(name: str) -> tuple[int, str]:
    header, _, body = (SAMPLES / f"{name}.txt").read_text().partition("\n")
    m = re.search(r"exit=(\d+)", header)
    assert m, header
    return int(m.group(1)), body


def test_every_sample_has_an_expectation() -> None:
    assert {p.stem for p in SAMPLES.glob("*.txt")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    code, stderr = load(name)
    expected = EXPECTED[name]
    if expected is None:
        assert code == 0
        return
    assert code != 0
    assert classify(code, stderr) is expected


def test_newer_restic_exit_codes_win() -> None:
    assert classify(10, "") is Failure.NO_REPOSITORY
    assert classify(11, "") is Failure.LOCKED
    assert classify(12, "") is Failure.WRONG_PASSWORD
    assert classify(130, "") is Failure.INTERRUPTED
    assert classify(1, "something odd") is Failure.UNKNOWN


def test_essential_lines_carry_no_terminal_control() -> None:
    """restic's progress clears its line (ESC [2K) and returns the carriage: none of that
    reaches last_error, a log or an alert (issue 15)."""
    stderr = ("\x1b[2K[0:01] 10 files 1.2 MiB\r\x1b[2K\x1b[1A\x07Fatal: unable to open "
              "config file: Stat: connection refused\x00\n")
    shown = essential_lines(stderr)
    assert shown == "Fatal: unable to open config file: Stat: connection refused"
    assert all(ch.isprintable() for ch in shown)
    assert essential_lines("Fatal: plain\n") == "Fatal: plain"  # the twin: nothing to strip


def test_essential_lines_finds_glued_fatal_and_drops_traces() -> None:
    _, stderr = load("sftp_server_down_during_backup")
    text = essential_lines(stderr)
    assert text.startswith("Fatal: unable to save snapshot")
    _, forget = load("rest_append_only_forget")
    shown = essential_lines(forget)
    assert "403 Forbidden" in shown and ".go:" not in shown and "retrying" not in shown
