"""sftp (OpenSSH sshd, pinned host key) and s3 (SeaweedFS) targets, for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from integration.office import Office, target_toml
from integration.servers import S3Server, SshServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def sftp_office(tmp_path: Path, ssh: SshServer, fingerprint: str | None) -> Office:
    extra: dict[str, str] = {"ssh_identity": str(ssh.client_key_path)}
    if fingerprint is not None:
        extra["ssh_host_key_fingerprint"] = fingerprint
    repo = ssh.sftp_url(tmp_path / "sftp-repo")
    return Office(tmp_path, [target_toml("huyen", repo, **extra)]).write()


@pytest.mark.requires_sshd
def test_sftp_target_pins_host_key_and_backs_up(tmp_path: Path, ssh_server: SshServer) -> None:
    office = sftp_office(tmp_path, ssh_server, ssh_server.host_key_fingerprint)
    init = office.run("init", "--json")
    assert init.code == 0, init.out + init.err
    pin = office.state / "ssh" / "huyen.known_hosts"
    assert pin.read_text().split()[1:] == ssh_server.host_key_line.split()
    assert office.run("init").code == 0  # idempotent with the pin in place
    done = office.run("backup", "now", "--json")
    assert done.code == 0, done.err
    assert re.fullmatch(r"[0-9a-f]{64}", done.json()["results"][0]["snapshot_id"])
    assert (tmp_path / "sftp-repo" / "snapshots").is_dir()
    assert len(office.run("snapshots", "--json").json()) == 1


@pytest.mark.requires_sshd
def test_sftp_wrong_fingerprint_is_refused(tmp_path: Path, ssh_server: SshServer) -> None:
    wrong = "SHA256:" + "A" * 43
    office = sftp_office(tmp_path, ssh_server, wrong)
    init = office.run("init")
    assert init.code == 3
    assert "does not match the pinned fingerprint" in init.out
    assert not (office.state / "ssh" / "huyen.known_hosts").exists()
    assert not (tmp_path / "sftp-repo").exists()


@pytest.mark.requires_sshd
def test_sftp_without_fingerprint_shows_what_to_confirm(tmp_path: Path,
                                                         ssh_server: SshServer) -> None:
    office = sftp_office(tmp_path, ssh_server, None)
    init = office.run("init")
    assert init.code == 3
    assert ssh_server.host_key_fingerprint in init.out
    assert "ssh_host_key_fingerprint is not set" in init.out


@pytest.mark.requires_sshd
def test_sftp_changed_host_key_after_pinning_stops_backup(tmp_path: Path,
                                                          ssh_server: SshServer) -> None:
    office = sftp_office(tmp_path, ssh_server, ssh_server.host_key_fingerprint)
    assert office.run("init").code == 0
    pin = office.state / "ssh" / "huyen.known_hosts"
    host, _, _ = pin.read_text().split()
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    pin.write_text(f"{host} ssh-ed25519 {other}\n")  # an interceptor's key, as far as ssh knows
    done = office.run("backup", "now", "--json")
    assert done.code == 1  # an integrity problem: the connection may be intercepted
    assert "is not the pinned key" in done.json()["results"][0]["error"]


@pytest.mark.requires_weed
def test_s3_target_with_env_file(tmp_path: Path, s3_server: S3Server) -> None:
    env_file = tmp_path / "s3.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in s3_server.env().items()))
    env_file.chmod(0o600)
    bucket = "tan-ky-" + tmp_path.name[-12:].replace("_", "-").lower().strip("-")
    office = Office(tmp_path, [target_toml("s3-tinh", s3_server.url(bucket),
                                           env_file=str(env_file))]).write()
    init = office.run("init")
    assert init.code == 0, init.out + init.err
    done = office.run("backup", "now", "--json")
    assert done.code == 0, done.err
    assert done.json()["results"][0]["files_new"] > 0
    snaps = office.run("snapshots", "--json").json()
    assert len(snaps) == 1 and snaps[0]["target"] == "s3-tinh"
    checked = office.run("config", "check")
    assert checked.code == 0, checked.err
    assert s3_server.secret_key not in checked.out  # secrets masked


@pytest.mark.requires_weed
def test_s3_wrong_credentials_fail_clearly(tmp_path: Path, s3_server: S3Server) -> None:
    env_file = tmp_path / "s3.env"
    env_file.write_text(f"AWS_ACCESS_KEY_ID={s3_server.access_key}\n"
                        "AWS_SECRET_ACCESS_KEY=wrong-secret\n")
    env_file.chmod(0o600)
    office = Office(tmp_path, [target_toml("s3-tinh", s3_server.url("tan-ky-badcreds"),
                                           env_file=str(env_file))]).write()
    init = office.run("init")
    assert init.code == 3
    assert "s3-tinh" in init.out
    assert "wrong-secret" not in init.out + init.err
