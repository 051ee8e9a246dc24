"""Real servers for integration tests, started on free loopback ports.

Plain classes with no pytest dependency: every server has ``start()`` and
``stop()`` (idempotent) and works as a context manager.  External servers run
as child processes in their own process group, with their output captured in
a log file whose tail is quoted in the error when they fail to start.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from integration import fastkdf

LOOPBACK = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
SMBD = "/usr/sbin/smbd"
SMBCLERK = Path(__file__).with_name("smbclerk.py")


class ServerStartError(RuntimeError):
    """A server did not become ready; the message ends with its log tail."""


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all sockets are held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def find_binary(name: str) -> str | None:
    """Path of executable ``name``: PATH, then next to sys.executable, then /usr/sbin."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (Path(sys.executable).parent, Path("/usr/sbin")):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name: str) -> str:
    found = find_binary(name)
    if found is None:
        raise FileNotFoundError(f"binary not found: {name}")
    return found


def minimal_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment for child processes."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def tcp_connectable(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_answers(url: str) -> bool:
    """True when ``url`` answers with any HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=1.0):  # noqa: S310 - loopback http only
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def run_checked(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Run a setup command; raise with its output if it fails.  Returns stdout."""
    proc = subprocess.run(
        list(argv), env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise ServerStartError(
            f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def _descendants(root_pid: int) -> list[int]:
    """Pids of all living descendants of ``root_pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an init that reaps nobody keeps those)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_quietly(kill: Callable[[int, int], None], target: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(target, sig)


# ---------------------------------------------------------------- processes


class ManagedProcess:
    """A child process in its own process group, output appended to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env)
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running():
            return
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {self.argv}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``condition`` until true; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                code = None if self._proc is None else self._proc.returncode
                self.stop()
                raise ServerStartError(
                    f"{what} exited with {code} before it was ready:\n{self.log_tail()}"
                )
            if condition():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"{what} not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the group (and strays), SIGKILL after ``grace`` seconds, reap."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pid = proc.pid
        strays = _descendants(pid)
        # The leader is not reaped until the end, so its pid (= the group id)
        # cannot be reused while we are signalling the group.
        _signal_quietly(os.killpg, pid, signal.SIGTERM)
        for stray in strays:
            _signal_quietly(os.kill, stray, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._exited_unreaped(pid):
            time.sleep(0.05)
        _signal_quietly(os.killpg, pid, signal.SIGKILL)
        for stray in strays:
            _signal_quietly(os.kill, stray, signal.SIGKILL)
        proc.wait(timeout=30)

    @staticmethod
    def _exited_unreaped(pid: int) -> bool:
        try:
            result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return result is not None


class Server:
    """Context-manager plumbing shared by all servers."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Stop the server for the ``with`` body and start it again afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()


# ---------------------------------------------------------------- rest


class RestServer(Server):
    """``rclone serve restic`` over ``root``; repositories live in sub folders."""

    @contextlib.contextmanager
    def hang(self) -> Iterator[None]:
        """SIGSTOP the server for the ``with`` body: the kernel still accepts connections
        (its listen backlog), and nothing ever answers them."""
        pid = self.process.pid
        assert pid is not None
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)

    def __init__(
        self,
        root: Path,
        workdir: Path,
        *,
        append_only: bool = False,
        rclone: str = "rclone",
        port: int | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.root = root
        self.append_only = append_only
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        root.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "rclone.conf"
        config.touch()
        argv = [rclone, "serve", "restic", "--config", str(config)]
        argv += ["--addr", f"{LOOPBACK}:{self.port}", "--cache-objects=false"]
        if append_only:
            argv.append("--append-only")
        argv.append(str(root))
        fastkdf.serve(self.base_url, root)  # its repositories open fast (fastkdf.py)
        self.process = ManagedProcess(
            argv, log_path=workdir / "rclone.log", env=minimal_env(workdir)
        )

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def url(self, name: str) -> str:
        """restic repository URL of the repository in sub folder ``name``."""
        return f"rest:{self.base_url}{name.strip('/')}/"

    def start(self) -> None:
        """Start (or restart, same port and folder) and wait until it accepts TCP."""
        self.process.start()
        self.process.wait_ready(
            lambda: tcp_connectable(self.port),
            timeout=self.start_timeout,
            what=f"rclone serve restic on port {self.port}",
        )

    def stop(self) -> None:
        self.process.stop()


# ---------------------------------------------------------------- ssh


SSHD_CONFIG = """\
ListenAddress {host}
Port {port}
HostKey {host_key}
PidFile {pid_file}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
AuthorizedKeysFile {authorized_keys}
Subsystem sftp internal-sftp
"""


def _banner_is_ssh(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            return sock.recv(64).startswith(b"SSH-2.0")
    except OSError:
        return False


class SshServer(Server):
    """OpenSSH sshd (as root) with its own host key and one authorized client key."""

    def __init__(
        self,
        workdir: Path,
        *,
        sshd: str = SSHD,
        ssh_keygen: str = "ssh-keygen",
        port: int | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        workdir.mkdir(parents=True, exist_ok=True)
        env = minimal_env(workdir)
        host_key = workdir / "ssh_host_ed25519_key"
        self.client_key_path = workdir / "client_ed25519"
        for key, comment in ((host_key, "secops-test-host"), (self.client_key_path, "root")):
            if not key.exists():
                keygen = [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment]
                run_checked([*keygen, "-f", str(key)], env)
        self.client_key_path.chmod(0o600)
        self.host_key_line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        self.host_key_fingerprint = run_checked(
            [ssh_keygen, "-l", "-E", "sha256", "-f", f"{host_key}.pub"], env
        ).split()[1]
        self.authorized_keys = workdir / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{self.client_key_path}.pub").read_text())
        self.known_hosts_path = workdir / "known_hosts"
        self.known_hosts_path.write_text(self.known_hosts_line + "\n")
        self.config_path = workdir / "sshd_config"
        self.config_path.write_text(
            SSHD_CONFIG.format(
                host=LOOPBACK,
                port=self.port,
                host_key=host_key,
                pid_file=workdir / "sshd.pid",
                authorized_keys=self.authorized_keys,
            )
        )
        self.process = ManagedProcess(
            [sshd, "-D", "-e", "-f", str(self.config_path)],
            log_path=workdir / "sshd.log",
            env=env,
        )

    @property
    def known_hosts_line(self) -> str:
        return f"[{LOOPBACK}]:{self.port} {self.host_key_line}"

    def sftp_url(self, path: Path | str) -> str:
        """``sftp://root@127.0.0.1:PORT//abs/path`` (restic: double slash = absolute)."""
        absolute = str(path)
        if not absolute.startswith("/"):
            raise ValueError(f"sftp_url needs an absolute path, got {absolute!r}")
        return f"sftp://root@{LOOPBACK}:{self.port}/{absolute}"

    def ssh_command(self, known_hosts: Path | None = None) -> list[str]:
        """ssh argv that opens the sftp subsystem with the pinned host key."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key_path),
            "-p",
            str(self.port),
            "-o",
            f"UserKnownHostsFile={known_hosts or self.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"root@{LOOPBACK}",
            "-s",
            "sftp",
        ]

    def restic_sftp_command(self, known_hosts: Path | None = None) -> str:
        """Value for ``restic -o sftp.command=...`` (paths must not contain spaces)."""
        return " ".join(self.ssh_command(known_hosts))

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(
            lambda: _banner_is_ssh(self.port),
            timeout=self.start_timeout,
            what=f"sshd on port {self.port}",
        )

    def stop(self) -> None:
        # Also ends per-connection children, which sshd moves to new sessions.
        self.process.stop()


# ---------------------------------------------------------------- samba


SAMBA_USER = "secops-clerk"
SAMBA_SHARE = "bau-cu"
# Everything smbd keeps (tdbs, pid file, sockets, logs, the passdb) lives under {work}: the
# system's Samba (its /var/lib/samba, /run/samba, winbindd) is never read or written.
SMB_CONF = """\
# written by tests/integration/servers.py (SambaServer): a private smbd for one test session
[global]
   server role = standalone server
   workgroup = SECOPS-TEST
   netbios name = SECOPS-TEST
   smb ports = {port}
   interfaces = {host}
   bind interfaces only = yes
   disable netbios = yes
   server min protocol = SMB2_02
   lock directory = {work}/lock
   state directory = {work}/state
   cache directory = {work}/cache
   pid directory = {work}/pid
   private dir = {work}/private
   ncalrpc dir = {work}/ncalrpc
   winbindd socket directory = {work}/winbindd
   log file = {work}/log.smbd
   max log size = 0
   log level = 1 auth_json_audit:3
   passdb backend = tdbsam:{work}/private/passdb.tdb
   idmap config * : backend = tdb
   idmap config * : range = 3000-7999
   map to guest = never
   restrict anonymous = 2
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   rpc start on demand helpers = no
   multicast dns register = no
   kernel oplocks = no

[{share}]
   path = {path}
   read only = no
   valid users = {user}
   force user = root
   vfs objects =
   kernel oplocks = no
   create mask = 0644
   directory mask = 0755
"""
SAMBA_DIRS = ("lock", "state", "cache", "pid", "private", "ncalrpc", "winbindd")


def ensure_system_user(name: str) -> None:
    """Create the unix account ``name`` (system, no home, no shell) unless it exists."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    useradd = find_binary("useradd") or "useradd"
    proc = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, timeout=60, check=False,
    )
    try:
        pwd.getpwnam(name)  # also fine when a parallel test session created it first
    except KeyError:
        raise ServerStartError(
            f"useradd {name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        ) from None


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, mode 0600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    return path


class SambaServer(Server):
    """Samba ``smbd`` (as root, in the foreground) sharing ``path`` as ``[bau-cu]``.

    One Samba user, ``secops-clerk`` (a unix system account, created if missing), with a
    random password (``password``; also in the 0600 file ``password_file``).  The share is
    read/write with ``force user = root``: the clerk's writes reach the disk as root, as the
    office's files are root's.  Loopback only, SMB2/3 only, no nmbd, no winbind, no RPC
    helpers.  smbd forks one child per client connection; that child does the file I/O for
    that client, and ``stop()`` ends it with the rest of the process group.
    """

    def __init__(
        self,
        path: Path,
        workdir: Path,
        *,
        office_root: Path | None = None,
        smbd: str = SMBD,
        smbpasswd: str = "smbpasswd",
        smbstatus: str = "smbstatus",
        user: str = SAMBA_USER,
        share: str = SAMBA_SHARE,
        port: int | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.path = path
        self.workdir = workdir
        # the folder a test builds its Office in: Office(office_root).data is the share
        self.office_root = office_root if office_root is not None else path.parent
        self.user = user
        self.share = share
        self.password = secrets.token_urlsafe(18)
        self.port = port if port is not None else free_port()
        self.smbpasswd = smbpasswd
        self.smbstatus = smbstatus
        self.start_timeout = start_timeout
        self._env = minimal_env(workdir)
        self._provisioned = False
        self._probe_error = ""
        path.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        for name in SAMBA_DIRS:
            (workdir / name).mkdir(exist_ok=True)
        (workdir / "private").chmod(0o700)
        self.conf = workdir / "smb.conf"
        self.conf.write_text(
            SMB_CONF.format(
                port=self.port, host=LOOPBACK, work=workdir, share=share, path=path, user=user
            )
        )
        self.password_file = write_private(workdir / "clerk.password", self.password + "\n")
        self.process = ManagedProcess(
            [smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(self.conf)],
            log_path=workdir / "smbd.log",
            env=self._env,
            cwd=workdir,
        )

    @property
    def pid(self) -> int | None:
        """The main smbd (the listener); each client is served by a child of it."""
        return self.process.pid

    def children(self) -> list[int]:
        """Living descendants of the main smbd: notifyd, cleanupd and one per connection."""
        pid = self.pid
        return [] if pid is None else _descendants(pid)

    def unc(self, rel: str = "") -> str:
        r"""``\\127.0.0.1\bau-cu\<rel>`` (``/`` or ``\`` separators in ``rel``)."""
        base = f"\\\\{LOOPBACK}\\{self.share}"
        inner = rel.replace("/", "\\").strip("\\")
        return f"{base}\\{inner}" if inner else base

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any ``smbclient`` call on this server (as the clerk)."""
        return {
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "auth_protocol": "ntlm",
        }

    def clerk_argv(self, *action: str) -> list[str]:
        """argv of tests/integration/smbclerk.py on this share: ``clerk_argv("word-save", rel)``."""
        return [
            sys.executable, str(SMBCLERK), "--port", str(self.port), "--user", self.user,
            "--password-file", str(self.password_file), "--share", self.share, *action,
        ]

    def status_json(self, *args: str, timeout: float = 30.0) -> dict[str, Any]:
        """``smbstatus -s <conf> --json [args]``, parsed: ``sessions``, ``tcons``,
        ``open_files``, each a dict by id; a session's smbd child is
        ``["server_id"]["pid"]`` (a string)."""
        argv = [self.smbstatus, "-s", str(self.conf), "--json", *args]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=self._env, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}\n{proc.stderr}")
        data = json.loads(proc.stdout)
        if not isinstance(data, dict):
            raise RuntimeError(f"smbstatus --json gave {type(data).__name__}: {proc.stdout!r}")
        return data

    def session_pids(self, user: str | None = None) -> list[int]:
        """Pids of the smbd children serving a session of ``user`` (default: the clerk)."""
        sessions = self.status_json().get("sessions", {}).values()
        wanted = user or self.user
        return sorted(
            int(s["server_id"]["pid"]) for s in sessions if s.get("username") == wanted
        )

    def _provision(self) -> None:
        """The unix account and its Samba password in the private passdb (via stdin)."""
        ensure_system_user(self.user)
        argv = [self.smbpasswd, "-c", str(self.conf), "-s", "-a", self.user]
        proc = subprocess.run(
            argv,
            input=f"{self.password}\n{self.password}\n",
            capture_output=True, text=True, env=self._env, timeout=60, check=False,
        )
        if proc.returncode != 0:
            raise ServerStartError(
                f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        self._provisioned = True

    def _login_works(self) -> bool:
        """An SMB2/3 session as the clerk and a tree connect to the share succeed."""
        from smbprotocol.connection import Connection
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect

        connection = Connection(uuid.uuid4(), LOOPBACK, self.port)
        try:
            connection.connect(timeout=5)
            session = Session(
                connection, self.user, self.password,
                require_encryption=False, auth_protocol="ntlm",
            )
            session.connect()
            tree = TreeConnect(session, self.unc())
            tree.connect()
            tree.disconnect()
        except Exception as e:  # any failure means: not ready yet
            self._probe_error = f"{type(e).__name__}: {e}"
            return False
        finally:
            with contextlib.suppress(Exception):
                connection.disconnect()
        return True

    def start(self) -> None:
        """Start (or restart: same port, share and password) and wait until the clerk can
        log in and connect to the share."""
        if not self._provisioned:
            self._provision()
        if not self.process.running():
            (self.workdir / "pid" / "smbd.pid").unlink(missing_ok=True)
        self._probe_error = ""
        self.process.start()
        what = f"smbd on port {self.port}"
        try:
            self.process.wait_ready(
                lambda: tcp_connectable(self.port) and self._login_works(),
                timeout=self.start_timeout,
                what=what,
            )
        except ServerStartError as e:
            if not self._probe_error:
                raise
            raise ServerStartError(f"{what}: last login attempt: {self._probe_error}\n{e}") from e

    def stop(self, timeout: float = 30.0) -> None:
        """Kill smbd and all its children, and wait (up to ``timeout``) until they are dead."""
        children = self.children()
        # The per-connection children stay in smbd's process group (--no-process-group).
        self.process.stop()
        deadline = time.monotonic() + timeout
        while any(process_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)


# ---------------------------------------------------------------- s3


class S3Server(Server):
    """SeaweedFS ``weed server`` with master, volume, filer and the S3 gateway."""

    SERVICES = ("master", "volume", "filer", "s3")

    def __init__(
        self,
        workdir: Path,
        *,
        weed: str | None = None,
        access_key: str = "secops-test-admin",
        secret_key: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.workdir = workdir
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(20)
        self.start_timeout = start_timeout
        ports = free_ports(2 * len(self.SERVICES))
        count = len(self.SERVICES)
        self.ports = dict(zip(self.SERVICES, ports[:count], strict=True))
        self.grpc_ports = dict(zip(self.SERVICES, ports[count:], strict=True))
        self.port = self.ports["s3"]
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = workdir / "identities.json"
        identities.write_text(json.dumps(self._identities(), indent=2))
        # -logtostderr: glog would otherwise write weed.* log files into /tmp.
        argv = [weed or require_binary("weed"), "-logtostderr", "server", f"-dir={data}"]
        argv += [f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", "-filer", "-s3"]
        for service in self.SERVICES:
            argv.append(f"-{service}.port={self.ports[service]}")
            argv.append(f"-{service}.port.grpc={self.grpc_ports[service]}")
        argv += [
            f"-s3.config={identities}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={workdir / 's3.sock'}",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]
        self.process = ManagedProcess(
            argv, log_path=workdir / "weed.log", env=minimal_env(workdir), cwd=workdir
        )

    def _identities(self) -> dict[str, object]:
        credentials = [{"accessKey": self.access_key, "secretKey": self.secret_key}]
        actions = ["Admin", "Read", "List", "Tagging", "Write"]
        return {"identities": [{"name": "admin", "credentials": credentials, "actions": actions}]}

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, bucket: str) -> str:
        """restic repository URL; restic creates the bucket itself on ``init``."""
        return f"s3:{self.endpoint}/{bucket}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def _ready(self) -> bool:
        """S3 gateway answers HTTP and the master knows a volume server with room."""
        if not http_answers(f"{self.endpoint}/"):
            return False
        try:
            url = f"http://{LOOPBACK}:{self.ports['master']}/dir/status"
            with urllib.request.urlopen(url, timeout=1.0) as response:
                status = json.load(response)
        except (OSError, ValueError):
            return False
        return int(status.get("Topology", {}).get("Free", 0)) > 0

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(
            self._ready, timeout=self.start_timeout, what=f"weed server (s3 port {self.port})"
        )

    def stop(self) -> None:
        # weed's filer waits 15 s for gRPC streams on SIGTERM: do not wait that long.
        self.process.stop(grace=1.0)
        # weed always adds gRPC unix sockets in /tmp named after the gRPC ports.
        for service, port in self.grpc_ports.items():
            sock = Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock")
            if sock.is_socket():
                sock.unlink(missing_ok=True)


# ---------------------------------------------------------------- gpg


class GpgHome(Server):
    """A throw-away GNUPGHOME holding one key (ed25519 sign + cv25519 encrypt)."""

    def __init__(self, name: str, email_address: str, *, gpg: str = "gpg") -> None:
        self.name = name
        self.email = email_address
        self.uid = f"{name} <{email_address}>"
        self.gpg = gpg
        self.gpgconf = str(Path(gpg).with_name("gpgconf")) if "/" in gpg else "gpgconf"
        self._home: Path | None = None
        self._fingerprint: str | None = None

    @property
    def home(self) -> Path:
        if self._home is None:
            raise RuntimeError("GpgHome not started")
        return self._home

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            raise RuntimeError("GpgHome not started")
        return self._fingerprint

    def env(self) -> dict[str, str]:
        """Minimal environment with HOME and GNUPGHOME set to this home."""
        return minimal_env(self.home, {"GNUPGHOME": str(self.home)})

    def gpg_argv(self, *args: str) -> list[str]:
        return [self.gpg, "--batch", "--no-tty", "--homedir", str(self.home), *args]

    def run(
        self, *args: str, input_data: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run gpg on this home; no check, the caller looks at returncode."""
        return subprocess.run(
            self.gpg_argv(*args),
            input=input_data,
            capture_output=True,
            env=self.env(),
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        if self._home is not None:
            return
        # Short path: gpg-agent's socket path must fit in ~108 bytes.
        self._home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
        self._home.chmod(0o700)
        try:
            self._generate()
        except BaseException:
            self.stop()
            raise

    def _generate(self) -> None:
        unprotected = ["--passphrase", "", "--pinentry-mode", "loopback"]
        run_checked(
            self.gpg_argv(*unprotected, "--quick-gen-key", self.uid, "ed25519", "sign", "never"),
            self.env(),
        )
        listing = run_checked(self.gpg_argv("--with-colons", "--list-keys", self.uid), self.env())
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        self._fingerprint = fingerprint
        add_subkey = ["--quick-add-key", fingerprint, "cv25519", "encr", "never"]
        run_checked(self.gpg_argv(*unprotected, *add_subkey), self.env())

    def export_public(self) -> str:
        """ASCII-armored public key (primary key and encryption subkey)."""
        return run_checked(self.gpg_argv("--armor", "--export", self.fingerprint), self.env())

    def stop(self) -> None:
        home, self._home = self._home, None
        if home is None:
            return
        subprocess.run(
            [self.gpgconf, "--homedir", str(home), "--kill", "all"],
            env=minimal_env(home),
            capture_output=True,
            timeout=30,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- smtp


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


class _CollectingHandler:
    def __init__(self, sink: list[ReceivedMail], arrived: threading.Condition) -> None:
        self.sink = sink
        self.arrived = arrived

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail = ReceivedMail(envelope.mail_from or "", tuple(envelope.rcpt_tos), content)
        with self.arrived:
            self.sink.append(mail)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer(Server):
    """aiosmtpd on a free loopback port; received mails collect in ``messages``."""

    def __init__(self, port: int | None = None) -> None:
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.messages: list[ReceivedMail] = []
        self._arrived = threading.Condition()
        handler = _CollectingHandler(self.messages, self._arrived)
        self._controller = Controller(handler, hostname=self.host, port=self.port)
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._controller.start()  # returns once the server accepts connections
            self._running = True

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"{len(self.messages)} of {count} mails after {timeout}s")
            return list(self.messages)

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False
