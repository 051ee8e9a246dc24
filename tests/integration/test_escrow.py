"""Key escrow: lose the whole state folder, recover with a custodian's key, restore off-site."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from integration.office import Office, target_toml, tree
from integration.servers import GpgHome, RestServer
from secops.backup.engine import Engine, repo_for
from secops.config.loader import load_config

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_rclone,
              pytest.mark.requires_gpg]


@pytest.fixture
def office(tmp_path: Path, rest_server: RestServer) -> Office:
    return Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", rest_server.url("escrow-" + tmp_path.name[-20:].lower()),
                    append_only=True),
    ]).write()


def test_escrow_recover_on_new_machine_and_restore(office: Office, tmp_path: Path,
                                                   custodian_gpg: GpgHome,
                                                   police_gpg: GpgHome) -> None:
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    original = tree(office.data)
    chair_key = tmp_path / "chair.asc"
    chair_key.write_text(custodian_gpg.export_public())
    police_key = tmp_path / "police.asc"
    police_key.write_text(police_gpg.export_public())
    escrow_file = tmp_path / "escrow.asc"
    made = office.run("keys", "escrow", "--to", str(chair_key), "--to", str(police_key),
                      "--out", str(escrow_file))
    assert made.code == 0, made.err
    assert escrow_file.stat().st_mode & 0o777 == 0o600
    text = escrow_file.read_text()
    assert "BEGIN PGP MESSAGE" in text
    for pw in (office.password_file("local"), office.password_file("offsite")):
        assert pw.read_text().strip() not in text
    old_passwords = {t: office.password_file(t).read_text() for t in ("local", "offsite")}

    # Disaster: the server is gone. A new machine has the config, the escrow file, the
    # custodian's key and the off-site repository; nothing else.
    gpg_agent_cleanup(office.state / "gnupg")
    shutil.rmtree(office.state)
    shutil.rmtree(office.data)
    shutil.rmtree(tmp_path / "repo")

    wrong = office.run("keys", "recover", str(escrow_file), "--gnupghome",
                       str(tmp_path / "no-such-keys"))
    assert wrong.code == 3 and "could not decrypt" in wrong.err

    rec = office.run("keys", "recover", str(escrow_file), "--gnupghome",
                     str(custodian_gpg.home), "--json")
    assert rec.code == 0, rec.err
    for name, secret in old_passwords.items():
        assert office.password_file(name).read_text() == secret
        assert office.password_file(name).stat().st_mode & 0o777 == 0o600
    assert (office.state / "keys" / "office-ed25519.key").exists()

    cfg = load_config(office.config)
    engine = Engine.from_config(cfg)
    offsite = engine.open(cfg.target("offsite"))
    snaps = engine.restic.snapshots(offsite)
    assert len(snaps) == 1
    out = tmp_path / "restored"
    engine.restic.restore(repo_for(cfg, cfg.target("offsite")), snaps[0].id, out)
    restored_root = out / str(office.data).lstrip("/")
    assert tree(restored_root) == original

    # The police custodian can recover too (the file is encrypted to both).
    again = office.run("keys", "recover", str(escrow_file), "--gnupghome",
                       str(police_gpg.home))
    assert again.code == 0, again.err


def test_tampered_escrow_is_refused(office: Office, tmp_path: Path,
                                    custodian_gpg: GpgHome) -> None:
    assert office.run("init").code == 0
    key = tmp_path / "chair.asc"
    key.write_text(custodian_gpg.export_public())
    escrow_file = tmp_path / "escrow.asc"
    assert office.run("keys", "escrow", "--to", str(key), "--out", str(escrow_file)).code == 0
    lines = escrow_file.read_text().splitlines()
    body = [i for i, ln in enumerate(lines) if ln and not ln.startswith("-----")
            and ":" not in ln]
    mid = body[len(body) // 2]
    lines[mid] = lines[mid][:10] + ("A" if lines[mid][10] != "A" else "B") + lines[mid][11:]
    bad = tmp_path / "tampered.asc"
    bad.write_text("\n".join(lines) + "\n")
    gpg_agent_cleanup(office.state / "gnupg")
    shutil.rmtree(office.state)
    refused = office.run("keys", "recover", str(bad), "--gnupghome", str(custodian_gpg.home))
    assert refused.code in (1, 3)
    assert not (office.state / "keys" / "restic-local.password").exists()
    good = office.run("keys", "recover", str(escrow_file), "--gnupghome",
                      str(custodian_gpg.home))
    assert good.code == 0, good.err  # the untouched twin


def gpg_agent_cleanup(home: Path) -> None:
    import subprocess

    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                   capture_output=True, timeout=30)
