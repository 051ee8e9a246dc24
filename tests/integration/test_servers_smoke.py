"""Smoke tests: each server fixture works with the real client (restic, gpg, smtplib)."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO

import pytest

from .servers import GpgHome, RestServer, S3Server, SmtpServer, SshServer, minimal_env


@dataclass
class Restic:
    """restic with a 0600 password file and a private cache, in a minimal environment."""

    binary: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.password_file = self.workdir / "password"
        self.password_file.write_text("correct horse battery staple\n")
        self.password_file.chmod(0o600)
        extra = {"RESTIC_CACHE_DIR": str(self.workdir / "cache"), **self.env}
        self.env = minimal_env(self.workdir, extra)

    def argv(self, repo: str, *args: str, options: Mapping[str, str] | None = None) -> list[str]:
        argv = [self.binary, "-r", repo, "--password-file", str(self.password_file)]
        for key, value in (options or {}).items():
            argv += ["-o", f"{key}={value}"]
        return [*argv, *args]

    def run(
        self, repo: str, *args: str, options: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(repo, *args, options=options),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_until(
        self, repo: str, *args: str, stderr_marker: str, timeout: float = 60.0
    ) -> tuple[int, str]:
        """Run restic until ``stderr_marker`` appears on stderr, then SIGINT it.

        Returns (exit code, stderr so far).  restic exits by itself if it ends first.
        """
        proc = subprocess.Popen(
            self.argv(repo, *args),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        stop_waiting = threading.Event()

        def pump(stream: IO[str]) -> None:
            for line in stream:
                lines.append(line)
                if stderr_marker in line:
                    stop_waiting.set()
            stop_waiting.set()

        reader = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
        reader.start()
        try:
            stop_waiting.wait(timeout)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=10)
        return code, "".join(lines)

    def ok(
        self, repo: str, *args: str, options: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = self.run(repo, *args, options=options)
        assert proc.returncode == 0, f"restic {args} exited {proc.returncode}:\n{proc.stderr}"
        return proc

    def snapshot_ids(self, repo: str, options: Mapping[str, str] | None = None) -> list[str]:
        listed = self.ok(repo, "snapshots", "--json", options=options).stdout
        return [str(snapshot["id"]) for snapshot in json.loads(listed)]

    def roundtrip(
        self, repo: str, source: Path, options: Mapping[str, str] | None = None
    ) -> list[str]:
        """init + backup + snapshots; returns the snapshot ids."""
        self.ok(repo, "init", options=options)
        self.ok(repo, "backup", "--host", "smoke", str(source), options=options)
        return self.snapshot_ids(repo, options=options)


@pytest.fixture
def restic(tmp_path: Path, require_binary: Callable[[str], str]) -> Restic:
    workdir = tmp_path / "restic"
    workdir.mkdir()
    return Restic(require_binary("restic"), workdir)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "ballots.csv").write_text("district,votes\nnorth,42\n")
    return folder


@pytest.mark.requires_restic
@pytest.mark.requires_rclone
def test_rest_append_only_backup(rest_server: RestServer, restic: Restic, source: Path) -> None:
    assert rest_server.append_only
    assert len(restic.roundtrip(rest_server.url("smoke-backup"), source)) == 1


@pytest.mark.requires_restic
@pytest.mark.requires_rclone
def test_rest_append_only_refuses_forget(
    rest_server: RestServer, restic: Restic, source: Path
) -> None:
    """The server answers 403 to the snapshot DELETE; the snapshot stays.

    restic 0.14 retries the refused DELETE for ~45 s before it exits 1 (see
    tests/data/restic_stderr/rest_append_only_forget.txt), so the test stops it
    (SIGINT: restic removes its own lock) as soon as the refusal shows up.
    """
    repo = rest_server.url("smoke-forget")
    [snapshot] = restic.roundtrip(repo, source)
    code, stderr = restic.run_until(repo, "forget", snapshot, stderr_marker="403 Forbidden")
    assert "blob not removed, server response: 403 Forbidden" in stderr
    assert code != 0
    assert restic.snapshot_ids(repo) == [snapshot]


@pytest.mark.requires_restic
@pytest.mark.requires_rclone
def test_rest_rw_backup_and_forget(
    rest_server_rw: RestServer, restic: Restic, source: Path
) -> None:
    repo = rest_server_rw.url("smoke-rw")
    [snapshot] = restic.roundtrip(repo, source)
    restic.ok(repo, "forget", snapshot)
    assert restic.snapshot_ids(repo) == []


@pytest.mark.requires_restic
@pytest.mark.requires_rclone
def test_rest_server_restarts_on_same_port(
    rest_server_rw: RestServer, restic: Restic, source: Path
) -> None:
    repo = rest_server_rw.url("smoke-restart")
    restic.ok(repo, "init")
    port = rest_server_rw.port
    with rest_server_rw.outage():
        assert restic.run(repo, "snapshots", "--no-lock").returncode != 0
    assert rest_server_rw.port == port
    assert restic.snapshot_ids(repo) == []


@pytest.mark.requires_restic
@pytest.mark.requires_sshd
def test_sftp_backup_with_pinned_host_key(
    ssh_server: SshServer, restic: Restic, source: Path, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(ssh_server.known_hosts_line + "\n")
    options = {"sftp.command": ssh_server.restic_sftp_command(known_hosts)}
    repo_dir = tmp_path / "sftp-repo"
    repo = ssh_server.sftp_url(repo_dir)
    assert repo == f"sftp://root@127.0.0.1:{ssh_server.port}/{repo_dir}"
    assert len(restic.roundtrip(repo, source, options)) == 1
    assert (repo_dir / "config").is_file()
    assert ssh_server.host_key_fingerprint.startswith("SHA256:")


@pytest.mark.requires_restic
@pytest.mark.requires_weed
def test_s3_backup(s3_server: S3Server, restic: Restic, source: Path) -> None:
    restic.env.update(s3_server.env())
    assert len(restic.roundtrip(s3_server.url("smoke-bucket"), source)) == 1


@pytest.mark.requires_gpg
def test_custodian_gpg_encrypts_to_itself(custodian_gpg: GpgHome, police_gpg: GpgHome) -> None:
    assert custodian_gpg.fingerprint != police_gpg.fingerprint
    assert custodian_gpg.export_public().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    secret = b"key share for the election night\n"
    encrypted = custodian_gpg.run(
        "--armor", "--encrypt", "--recipient", custodian_gpg.fingerprint, input_data=secret
    )
    assert encrypted.returncode == 0, encrypted.stderr
    decrypted = custodian_gpg.run("--decrypt", input_data=encrypted.stdout)
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == secret
    assert police_gpg.run("--decrypt", input_data=encrypted.stdout).returncode != 0


def test_smtp_server_receives(smtp_server: SmtpServer) -> None:
    smtp_server.clear()
    message = EmailMessage()
    message["From"] = "secops@commune.example"
    message["To"] = "chair@commune.example"
    message["Subject"] = "backup report"
    message.set_content("all good")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.send_message(message)
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("chair@commune.example",)
    assert mail.message["Subject"] == "backup report"
