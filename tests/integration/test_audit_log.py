"""The audit log through the real CLI and daemon: every act recorded; a rollback caught by the
anchor kept on the append-only off-site server; the police verify a copy with the public key
and the escrowed initial key; the daemon raises audit.tampered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from integration.daemon import Daemon, wait_for
from integration.office import Office, target_toml
from integration.servers import GpgHome, RestServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_rclone,
              pytest.mark.requires_gpg]


@pytest.fixture
def office(tmp_path: Path, rest_server: RestServer) -> Office:
    o = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", rest_server.url("audit-" + tmp_path.name[-20:].lower()),
                    append_only=True),
    ]).write()
    assert o.run("init").code == 0
    return o


def kinds(office: Office) -> list[str]:
    log = office.state / "audit" / "audit.jsonl"
    return [json.loads(line)["kind"] for line in log.read_text(encoding="utf-8").splitlines()]


def test_acts_are_recorded_and_a_rollback_is_caught_off_site(office: Office,
                                                             tmp_path: Path) -> None:
    assert office.run("backup", "now").code == 0
    assert office.run("drill", "--target", "local").code == 0
    seen = kinds(office)
    assert seen[:2] == ["audit.genesis", "init.completed"]
    assert seen.count("backup.completed") == 2 and "drill.completed" in seen
    ok = office.run("audit", "verify", "--json")
    assert ok.code == 0, ok.out + ok.err  # the untouched twin
    doc = ok.json()
    assert doc["ok"] and doc["first_bad_seq"] is None and doc["checkpoints_verified"] >= 2
    assert doc["offsite"]["offsite"]["ok"] is True

    # The attacker keeps a copy of the log, its checkpoints and both key states...
    old = tmp_path / "audit-old"
    shutil.copytree(office.state / "audit", old)
    key_state = office.state / "keys" / "audit-mac.state"
    cp_state = office.state / "keys" / "audit-checkpoint.state"
    old_key, old_cp_key = key_state.read_bytes(), cp_state.read_bytes()
    (office.data / "bien-ban-moi.txt").write_text("Biên bản bổ sung\n", encoding="utf-8")
    assert office.run("backup", "now").code == 0
    assert office.run("backup", "now").code == 0  # its anchor covers the first one's record
    # ...and later puts back the log and the MAC key: the checkpoint key no longer follows
    shutil.rmtree(office.state / "audit")
    shutil.copytree(old, office.state / "audit")
    key_state.write_bytes(old_key)
    cut = office.run("audit", "verify", "--no-offsite", "--json")
    assert cut.code == 1 and cut.json()["problem"] == "checkpoint", cut.out
    # ...and with the checkpoint key too: locally consistent, no gap anywhere
    cp_state.write_bytes(old_cp_key)
    bad = office.run("audit", "verify", "--json")
    assert bad.code == 1
    doc = bad.json()
    assert doc["problem"] == "rollback" and doc["first_bad_seq"] == doc["records"]
    assert doc["offsite"]["offsite"]["ok"] is False
    local_only = office.run("audit", "verify", "--no-offsite", "--json")
    assert local_only.code == 0  # only the anchor the server cannot withdraw tells
    status = office.run("status", "--json").json()
    assert "audit.tampered" in [a["kind"] for a in status["alerts"]]


def test_police_verify_a_copy_with_the_escrowed_key(office: Office, tmp_path: Path,
                                                    custodian_gpg: GpgHome,
                                                    police_gpg: GpgHome) -> None:
    police_key = tmp_path / "police.asc"
    police_key.write_text(police_gpg.export_public())
    escrow = tmp_path / "escrow.asc"
    made = office.run("keys", "escrow", "--to", str(police_key), "--out", str(escrow),
                      "--json")
    assert made.code == 0, made.err
    assert made.json()["audit_initial_key_removed"] is True
    assert not (office.state / "keys" / "audit-mac.initial").exists()
    assert office.run("backup", "now").code == 0
    pub = tmp_path / "pub"
    assert office.run("keys", "export-public", "--out", str(pub)).code == 0
    copy = tmp_path / "copy"
    shutil.copytree(office.state / "audit", copy)

    def police(*extra: str) -> tuple[int, dict[str, object]]:
        r = office.run("--config", str(tmp_path / "none.toml"), "audit", "verify", "--log",
                       str(copy), "--public-key", str(pub / "office-ed25519.pub"),
                       "--key-from-escrow", str(escrow), "--gnupghome", str(police_gpg.home),
                       "--json", *extra)
        return r.code, json.loads(r.out) if r.out else {"err": r.err}

    code, doc = police()
    assert code == 0 and doc["macs_checked"] is True, doc  # the twin
    log = copy / "audit.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[2])
    rec["data"]["snapshot_id"] = "0" * 64
    lines[2] = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, doc = police()
    assert code == 1 and doc["first_bad_seq"] == 2 and doc["problem"] == "mac", doc


def test_daemon_raises_audit_tampered(office: Office) -> None:
    log = office.state / "audit" / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join([lines[0], *lines[2:]]))  # a record deleted
    d = Daemon(office).start()
    try:
        wait_for(lambda: "audit.tampered" in [
            a["kind"] for a in office.run("status", "--json").json()["alerts"]], 30,
            "the audit.tampered alert")
        alert = next(a for a in office.run("status", "--json").json()["alerts"]
                     if a["kind"] == "audit.tampered")
        assert alert["details"]["first_bad_seq"] == 1
        assert alert["details"]["problem"] == "sequence"
    finally:
        d.stop()
    assert "daemon.started" in kinds(office) and "daemon.stopped" in kinds(office)


def test_an_offsite_anchor_that_cannot_be_checked_is_not_a_pass(office: Office,
                                                                 rest_server: RestServer
                                                                 ) -> None:
    """Red team: with the append-only target unreachable, verify printed "not checked" and
    exited 0 on a forged log. What could not be compared is not vouched for: exit 3."""
    assert office.run("backup", "now").code == 0
    assert office.run("audit", "verify").code == 0  # the twin: reachable, all checked
    with rest_server.outage():
        down = office.run("audit", "verify", "--json")
    assert down.code == 3, down.out + down.err
    assert down.json()["ok"] is True and down.json()["offsite"]["offsite"]["ok"] is None
    assert "could not be checked" in down.err
