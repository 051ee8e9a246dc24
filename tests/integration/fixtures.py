"""Session-scoped real servers (see servers.py), each stopped at session end; a pytest plugin
loaded by tests/conftest.py, so tests/integration and tests/adversarial share one of each.

A fixture whose binary is missing skips its tests (fails them when CI=true).
Servers are shared by the whole session: use a fresh repository name per test,
and bring a server back up after an outage test (``with server.outage(): ...``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from integration.servers import (
    GpgHome,
    RestServer,
    S3Server,
    SambaServer,
    Server,
    SmtpServer,
    SshServer,
)

ServerT = TypeVar("ServerT", bound=Server)
RequireBinary = Callable[[str], str]


def _serve(server: ServerT) -> Iterator[ServerT]:
    """Start ``server``, hand it out, always stop it (also after a failed start)."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rest_server(
    tmp_path_factory: pytest.TempPathFactory, require_binary: RequireBinary
) -> Iterator[RestServer]:
    """rclone ``serve restic --append-only``: restic cannot delete or forget."""
    base = tmp_path_factory.mktemp("rest-append-only")
    rclone = require_binary("rclone")
    yield from _serve(RestServer(base / "repos", base / "server", append_only=True, rclone=rclone))


@pytest.fixture(scope="session")
def rest_server_rw(
    tmp_path_factory: pytest.TempPathFactory, require_binary: RequireBinary
) -> Iterator[RestServer]:
    """rclone ``serve restic`` without append-only."""
    base = tmp_path_factory.mktemp("rest-rw")
    rclone = require_binary("rclone")
    yield from _serve(RestServer(base / "repos", base / "server", rclone=rclone))


@pytest.fixture(scope="session")
def ssh_server(
    tmp_path_factory: pytest.TempPathFactory,
    require_binary: RequireBinary,
    missing_prerequisite: Callable[[str], NoReturn],
) -> Iterator[SshServer]:
    """OpenSSH sshd on loopback; log in as root with ``client_key_path``."""
    sshd = require_binary("sshd")
    keygen = require_binary("ssh-keygen")
    require_binary("ssh")
    if os.geteuid() != 0:
        missing_prerequisite("the sshd fixture needs root")
    base = tmp_path_factory.mktemp("sshd")
    yield from _serve(SshServer(base, sshd=sshd, ssh_keygen=keygen))


@pytest.fixture(scope="session")
def s3_server(
    tmp_path_factory: pytest.TempPathFactory, require_binary: RequireBinary
) -> Iterator[S3Server]:
    """SeaweedFS S3 gateway; credentials in ``env()``, repositories at ``url(bucket)``."""
    weed = require_binary("weed")
    yield from _serve(S3Server(tmp_path_factory.mktemp("weed"), weed=weed))


@pytest.fixture(scope="session")
def samba_server(
    tmp_path_factory: pytest.TempPathFactory,
    require_binary: RequireBinary,
    missing_prerequisite: Callable[[str], NoReturn],
) -> Iterator[SambaServer]:
    """Samba smbd on loopback sharing ``office_root / "bau-cu"`` as ``[bau-cu]`` to the clerk
    ``secops-clerk`` (``user``/``password``/``password_file``); ``Office(office_root)`` has
    its data there.  The share folder exists (empty) from the start: the whole session
    shares it, so use a sub folder per test."""
    smbd = require_binary("smbd")
    smbpasswd = require_binary("smbpasswd")
    smbstatus = require_binary("smbstatus")
    if os.geteuid() != 0:
        missing_prerequisite("the smbd fixture needs root")
    base = tmp_path_factory.mktemp("samba")
    office_root = base / "office"
    share = office_root / "bau-cu"
    share.mkdir(parents=True)
    yield from _serve(SambaServer(share, base / "server", office_root=office_root, smbd=smbd,
                                  smbpasswd=smbpasswd, smbstatus=smbstatus))


@pytest.fixture(scope="session")
def custodian_gpg(require_binary: RequireBinary) -> Iterator[GpgHome]:
    """GnuPG home of the key custodian (office chair)."""
    gpg = require_binary("gpg")
    require_binary("gpgconf")
    yield from _serve(GpgHome("Office Chair", "chair@commune.example", gpg=gpg))


@pytest.fixture(scope="session")
def police_gpg(require_binary: RequireBinary) -> Iterator[GpgHome]:
    """GnuPG home of the second custodian (police)."""
    gpg = require_binary("gpg")
    require_binary("gpgconf")
    yield from _serve(GpgHome("Police Custodian", "custody@police.example", gpg=gpg))


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """In-process SMTP sink; call ``clear()`` before a test that counts mails."""
    yield from _serve(SmtpServer())


@pytest.fixture(autouse=True)
def _stop_office_gpg_agents(tmp_path: Path) -> Iterator[None]:
    """secops starts a gpg-agent for each office GPG home; end those of this test."""
    yield
    for home in tmp_path.glob("**/gnupg"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, timeout=30, check=False)


@pytest.fixture(autouse=True)
def _stop_daemons() -> Iterator[None]:
    """No test leaves a ``secops run`` behind, whatever failed."""
    from integration.daemon import Daemon

    yield
    while Daemon.started:
        d = Daemon.started.pop()
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
