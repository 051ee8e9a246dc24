"""The wall clock stepped back an hour under the real daemon (libfaketime, as NTP or a
person at the BIOS would; the monotonic clock untouched, as the kernel keeps it). Before
issue 15 no backup of any kind ran until the wall clock had passed its old value again: a
change "older" than the last backup looked backed up. Now the change made after the step
reaches the target within debounce + 30 s, the step is audited, and the log still
verifies. The twin: the same daemon before the step backs up the same way."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from integration.daemon import Daemon, restored_content, snapshot_count, wait_for
from integration.office import QUIET_SCHEDULE, Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def libfaketime() -> Path:
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    assert found, "libfaketime is missing: `make deps` installs it"
    return found[0]


def more_than(office: Office, count: int) -> bool:
    return snapshot_count(office, "local") > count


def test_a_change_after_the_clock_stepped_back_an_hour_is_backed_up(tmp_path: Path) -> None:
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {"LD_PRELOAD": str(libfaketime()), "FAKETIME_TIMESTAMP_FILE": str(offset),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra="debounce_seconds = 1\nmax_delay_seconds = 10",
                    tail=QUIET_SCHEDULE).write()
    assert office.run("init").code == 0
    d = Daemon(office, env=env).start()

    def settled() -> bool:
        doc = office.run("status", "--json", env=env).json()
        return doc["pending_changes"] == 0 and all(t["last_ok"] for t in
                                                   doc["targets"].values())

    sheets = [office.data / "bien-ban-kiem-phieu" / f"to-bau-cu-0{i}.txt" for i in (1, 2)]
    try:
        wait_for(settled, 90, "the first backup")
        for n, (sheet, step) in enumerate(zip(sheets, ["+0", "-1h"], strict=True)):
            if step != "+0":
                offset.write_text(f"{step}\n")
                wait_for(lambda: "wall clock stepped" in d.log(), 60, "the step noticed")
            before = snapshot_count(office, "local")
            sheet.write_text(f"Kết quả kiểm phiếu, bản {n + 1} (đồng hồ {step})\n",
                             encoding="utf-8")
            start = time.monotonic()
            wait_for(functools.partial(more_than, office, before), 120,
                     f"the change made at clock {step}")
            print(f"clock {step}: on local after {time.monotonic() - start:.1f} s")
            assert restored_content(office, "local", sheet, tmp_path / f"r{n}") == \
                sheet.read_bytes()
        assert office.run("status", "--json", env=env).json()["daemon"] == "running"
        verify = office.run("audit", "verify", env=env)
        assert verify.code == 0, verify.out + verify.err
        assert '"clock.stepped"' in (office.state / "audit" / "audit.jsonl").read_text()
    finally:
        d.stop()
