"""A state.db damaged while the daemon runs (issue 15): 64 flipped bytes at the head of each
b-tree page. It used to be: every backup job failed, logged only, no event, no retry, and
`status` said nothing (or a traceback). Now the daemon says `state.corrupt` where the damage
cannot reach (the journal, /run/secops, a message straight to the recipients), `status`
shows it (exit 3), and the recovery its message names (the database moved aside, the daemon
started again) records the kept alert, runs its playbook and backs up the change made
meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faults.common import FAST, RETRY_TAIL, drop_subjects, settled
from integration.daemon import Daemon, restored_content, snapshot_count, wait_for
from integration.office import PLAYBOOK_TAIL, Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def status(office: Office) -> tuple[int, Any, str]:
    done = office.run("status", "--json")
    return done.code, done.json(), done.err


def flip_page_heads(db: Path) -> None:
    with db.open("r+b") as f:
        for page in range(1, db.stat().st_size // 4096):
            f.seek(page * 4096)
            head = f.read(64)
            f.seek(page * 4096)
            f.write(bytes(b ^ 0xFF for b in head))


def test_a_state_db_damaged_while_running_is_said_and_recovered(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=FAST, tail=RETRY_TAIL + PLAYBOOK_TAIL.format(drop=drop))
    office.write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(office), 90, "the first backup")
        code, doc, err = status(office)  # the twin: intact, and said so
        assert (code, doc["state_failure"], err) == (0, None, ""), (doc, err)
        assert "state_damaged" not in doc
        before = snapshot_count(office, "local")
        db = office.state / "state.db"
        flip_page_heads(db)
        sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
        sheet.write_text("Kết quả kiểm phiếu khi cơ sở dữ liệu trạng thái hỏng\n",
                         encoding="utf-8")
        # the daemon's own word (its kept alert), not only status meeting the damage itself
        wait_for(lambda: [a["kind"] for a in status(office)[1]["alerts"]][:1] ==
                 ["state.corrupt"], 60, "the daemon's state.corrupt in status")
        code, doc, err = status(office)
        assert code == 3 and "damaged" in err and err.count("\n") == 1, err
        assert doc["state_failure"]["kinds"] == ["state.corrupt"], doc
        assert doc["alerts"][0]["kind"] == "state.corrupt" and doc["daemon"] == "running"
        human = office.run("status")
        assert human.code == 3 and "STATE NOT RECORDED" in human.out, human.out
        wait_for(lambda: any("hỏng" in s for s in drop_subjects(drop)), 60, "the direct message")
        assert "state.corrupt" in d.log()
        # what the message says to do: keep the damaged database, start the daemon again
        assert d.stop() == 0, d.log()
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            if (office.state / name).exists():
                (office.state / name).rename(office.state / f"{name}.damaged")
        d = Daemon(office).start()
        wait_for(lambda: settled(office), 120, "the change made while state.db was damaged")
        code, doc, err = status(office)
        assert code == 0 and doc["state_failure"] is None and err == "", (doc, err)
        kinds = [a["kind"] for a in doc["alerts"]]
        kept = [a for a in doc["alerts"] if a["kind"] == "state.corrupt"]
        assert len(kept) == 1 and kept[0]["details"]["kept_outside"] is True, kinds
        assert "state.lost" in kinds, kinds  # its history is gone, and said so
        assert snapshot_count(office, "local") > before
        assert restored_content(office, "local", sheet, tmp_path / "r") == sheet.read_bytes()
        wait_for(lambda: any("không ghi được dữ liệu trạng thái" in s for s in drop_subjects(drop)),
                 120, "the playbook's notice")
        verify = office.run("audit", "verify")
        assert verify.code == 0, verify.out + verify.err
    finally:
        d.stop()
