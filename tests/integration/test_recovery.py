"""docs/recovery.md, step by step: an empty machine, the escrow file and the off-site repo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from integration.office import Office, target_toml, tree
from integration.servers import GpgHome, RestServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_rclone,
              pytest.mark.requires_gpg]


def test_recovery_on_a_new_machine(tmp_path: Path, rest_server: RestServer,
                                   custodian_gpg: GpgHome) -> None:
    # The old server: set up, backed up, keys escrowed to the custodian.
    office = Office(tmp_path / "old", [
        target_toml("local", str(tmp_path / "old" / "repo")),
        target_toml("offsite", rest_server.url("recovery-" + tmp_path.name[-12:].lower()),
                    append_only=True),
    ]).write()
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    original = tree(office.data)
    chair = tmp_path / "chair.asc"
    chair.write_text(custodian_gpg.export_public())
    escrow = tmp_path / "usb" / "escrow.asc"
    escrow.parent.mkdir()
    assert office.run("keys", "escrow", "--to", str(chair), "--out", str(escrow)).code == 0
    config_text = office.config.read_text()

    # Disaster: the old server is gone; nothing of it survives.
    subprocess.run(["gpgconf", "--homedir", str(office.state / "gnupg"), "--kill", "all"],
                   check=False, capture_output=True, timeout=30)
    shutil.rmtree(tmp_path / "old")

    # Step 3: recover keys and config (the config file does not exist yet).
    new = Office(tmp_path / "old")  # same paths as in the escrowed config
    new.root.mkdir(parents=True)
    rec = new.run("keys", "recover", str(escrow), "--gnupghome", str(custodian_gpg.home))
    assert rec.code == 0, rec.err
    assert new.config.read_text() == config_text
    # Step 4: list the off-site snapshots.
    listed = new.run("snapshots", "--target", "offsite", "--json")
    assert listed.code == 0, listed.err
    assert len(listed.json()) == 1
    # Step 5: restore into an empty folder, verified against the signed manifest.
    out = tmp_path / "khoi-phuc"
    done = new.run("restore", "latest", "--target", "offsite", "--to", str(out), "--json")
    assert done.code == 0, done.err
    assert done.json()["ok"] is True
    restored = out / str(new.data).lstrip("/")
    assert tree(restored) == original
    # Step 6: verify with the exported public key alone.
    pub = tmp_path / "pub"
    assert new.run("keys", "export-public", "--out", str(pub)).code == 0
    check = new.run("restore", "latest", "--target", "offsite", "--to", str(tmp_path / "chk"),
                    "--public-key", str(pub / "office-ed25519.pub"))
    assert check.code == 0, check.err
    # Step 7: data back in place, protection resumed with the same keys.
    shutil.move(str(restored), str(new.data))
    init = new.run("init", "--json")
    assert init.code == 0, init.out
    steps = {s["what"]: s["status"] for s in init.json()["steps"]}
    assert steps["target 'local' repository"] == "created"  # lost with the old server
    assert steps["target 'offsite' repository"] == "unchanged"  # opens with the escrowed key
    assert steps["Ed25519 office key " + str(new.state / "keys" / "office-ed25519.key")] == \
        "unchanged"
    again = new.run("backup", "now", "--json")
    assert again.code == 0, again.err
    assert [r["ok"] for r in again.json()["results"]] == [True, True]
