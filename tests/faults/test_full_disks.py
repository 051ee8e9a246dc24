"""Full disks (issue 15): the state disk (state.db, manifests, audit log, restic cache) and a
repository's disk, each a real tmpfs of a few megabytes filled to the last byte.

- A full state disk used to leave the daemon doing nothing, unable to record an alert, with
  `status` saying nothing until "not responding" a minute later. Now `state.disk_full` goes
  where the full disk cannot reach (the journal, /run/secops, a message straight to the
  recipients), `status` shows it at once, and once there is room again the kept alerts are
  recorded, the playbook runs and the change made meanwhile reaches the target.
- A full repository disk fails that target alone: the other target takes each change within
  debounce + 30 s, the full one is alerted and catches up once there is room, `restic check`
  clean, the restore byte-identical.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults.common import RETRY_TAIL, drop_subjects, kinds, more_than, settled, status
from integration.daemon import Daemon, restic_check, restored_content, snapshot_count, wait_for
from integration.office import PLAYBOOK_TAIL, QUIET_SCHEDULE, Office, target_toml
from integration.servers import RestServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the disk refuses the next byte."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    # the last partial megabyte, a page at a time
    with filler.open("ab", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_a_full_state_disk_is_said_outside_it_and_nothing_is_lost(tmp_path: Path) -> None:
    drop = tmp_path / "drop"  # on another disk than the state
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra="debounce_seconds = 1\nmax_delay_seconds = 10",
                    tail=RETRY_TAIL + PLAYBOOK_TAIL.format(drop=drop))
    with tmpfs(office.state, "48m"):
        office.write()
        assert office.run("init").code == 0
        d = Daemon(office).start()
        try:
            wait_for(lambda: settled(office), 90, "the first backup")
            assert status(office)["state_failure"] is None  # the twin: all well, said so
            assert "state.disk_full" not in kinds(office)
            before = snapshot_count(office, "local")
            filler = fill(office.state)
            sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
            sheet.write_text("Kết quả kiểm phiếu khi đĩa đầy\n", encoding="utf-8")
            start = time.monotonic()
            wait_for(lambda: status(office)["state_failure"] is not None, 60,
                     "state.disk_full in status")
            print(f"state.disk_full in status after {time.monotonic() - start:.1f} s")
            doc = status(office)
            assert doc["daemon"] == "running", doc  # alive, not "not responding"
            failure = doc["state_failure"]
            assert failure["kinds"] == ["state.disk_full"], failure
            assert doc["alerts"][0]["kind"] == "state.disk_full"
            human = office.run("status").out
            assert "STATE NOT RECORDED" in human and "state.disk_full" in human, human
            # told straight to the recipients: the outbox is on the full disk
            wait_for(lambda: any("hết dung lượng" in s for s in drop_subjects(drop)), 60,
                     "the direct message")
            assert "state.disk_full" in d.log()  # and the journal has it
            filler.unlink()  # room again
            wait_for(lambda: status(office)["state_failure"] is None, 120,
                     "the kept alerts recorded")
            events = office.run("status", "--json").json()["alerts"]
            kept = [a for a in events if a["kind"] == "state.disk_full"]
            assert len(kept) == 1 and kept[0]["details"]["kept_outside"] is True, events
            wait_for(functools.partial(more_than, office, "local", before), 120,
                     "the change made while the disk was full")
            wait_for(lambda: settled(office), 120, "all settled")
            assert restored_content(office, "local", sheet, tmp_path / "r") == \
                sheet.read_bytes()
            # the playbook ran on the recorded alert (an incident, its notice)
            wait_for(lambda: any("không ghi được dữ liệu trạng thái" in s
                                 for s in drop_subjects(drop)), 120, "the playbook's notice")
            verify = office.run("audit", "verify")
            assert verify.code == 0, verify.out + verify.err  # no torn line, no false alarm
            assert "audit.tampered" not in kinds(office)
        finally:
            d.stop()


def test_a_full_repository_disk_fails_that_target_alone(
        tmp_path: Path, rest_server: RestServer) -> None:
    office = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo-disk" / "repo")),
        target_toml("offsite", rest_server.url("full-" + tmp_path.name[-16:].lower()),
                    append_only=True),
    ], backup_extra="debounce_seconds = 1\nmax_delay_seconds = 10",
        tail=RETRY_TAIL + QUIET_SCHEDULE)
    with tmpfs(tmp_path / "repo-disk", "24m"):
        office.write()
        assert office.run("init").code == 0
        d = Daemon(office).start()
        try:
            wait_for(lambda: settled(office), 90, "the first backup")
            filler = fill(tmp_path / "repo-disk")
            sheets = [office.data / "bien-ban-kiem-phieu" / f"to-bau-cu-0{i}.txt"
                      for i in (1, 2)]
            for n, sheet in enumerate(sheets):
                before = snapshot_count(office, "offsite")
                sheet.write_text(f"Kết quả kiểm phiếu, đĩa kho đầy, bản {n + 1}\n" * 200,
                                 encoding="utf-8")
                start = time.monotonic()
                wait_for(functools.partial(more_than, office, "offsite", before), 120,
                         f"change {n + 1} on offsite while local's disk is full")
                print(f"change {n + 1}: on offsite after {time.monotonic() - start:.1f} s")
            wait_for(lambda: "backup.failed" in kinds(office), 120, "backup.failed")
            local = status(office)["targets"]["local"]
            assert local["last_ok"] is False and "local" in local["last_error"], local
            assert "space" in local["last_error"].lower(), local
            assert status(office)["targets"]["offsite"]["last_ok"] is True
            filler.unlink()
            wait_for(lambda: settled(office), 180, "local to catch up")
            check = restic_check(office, str(tmp_path / "repo-disk" / "repo"), "local")
            assert check.returncode == 0, check.stdout + check.stderr
            for sheet in sheets:
                for target in ("local", "offsite"):
                    got = restored_content(office, target, sheet,
                                           tmp_path / f"r-{target}-{sheet.stem}")
                    assert got == sheet.read_bytes(), target
        finally:
            d.stop()
