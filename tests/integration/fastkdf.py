"""Real restic with a cheap key derivation and a quick ``init``, for test repositories only.

``restic init`` calibrates scrypt to take about 0.5 s on the machine (N=32768, r=8, p=3
here; the calibration itself costs some 1.8 s), and every later restic command pays the
derivation again to open the repository: 0.35 s of CPU per command, thousands of commands
and a few hundred inits in the suite. restic's own tests lower the parameters
(``repository.TestUseLowSecurityKDFParameters``); restic has no option for it.

So the test session puts :func:`restic_binary` first on PATH (tests/conftest.py): a shell
script named restic that runs the real restic for every command but ``init``. An ``init``
of a repository on this machine (a local path, a rest server of these tests, SFTP on
loopback) is a copy of a template that the real ``restic init`` made once per session,
with a fresh repository id and the office's own password, its key under N=1024, r=8, p=1
(what restic's own tests use is lower still). Every command after it, and every byte in
the repository, is restic's own; only the chunker polynomial is shared between the tests'
repositories. Any other ``init`` (S3) is the real one. The daemon and the CLI under test
run unchanged.

Formats (restic's design document, "Keys, Encryption and MAC"): scrypt of the password
gives 64 bytes: an AES-256 key, then the Poly1305-AES key (k, r); ``data`` is nonce ||
AES-256-CTR ciphertext || Poly1305-AES(ciphertext), and holds the master key, which
encrypts the config (``{"version": 2, "id": ..., "chunker_polynomial": ...}``) the same
way. A key file is named by the SHA-256 of its content.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP = {"N": 1024, "r": 8, "p": 1}

SCRIPT = """#!/bin/bash
# restic; `restic init` made quick and its key cheap to open (tests only: fastkdf.py)
for arg in "$@"; do
    if [ "$arg" = init ]; then
        exec {python} {module} {restic} "$(dirname "$0")" "$@"
    fi
done
exec {restic} "$@"
"""
PREFIX = "secops-fastkdf-"
SERVED = "served.json"  # beside the script: rest server URL -> the folder it serves

Keys = tuple[bytes, bytes, bytes]


def _user_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> Keys:
    k = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=1 << 30, dklen=64)
    return k[:32], k[32:48], k[48:64]


def _mac(keys: Keys, nonce: bytes, ciphertext: bytes) -> bytes:
    _, k, r = keys
    s = Cipher(algorithms.AES(k), modes.ECB()).encryptor().update(nonce)  # noqa: S305
    return Poly1305.generate_tag(r + s, ciphertext)


def _decrypt(keys: Keys, blob: bytes) -> bytes:
    nonce, ciphertext, tag = blob[:16], blob[16:-16], blob[-16:]
    if _mac(keys, nonce, ciphertext) != tag:
        raise ValueError("the key file does not open with this password")
    return Cipher(algorithms.AES(keys[0]), modes.CTR(nonce)).decryptor().update(ciphertext)


def _encrypt(keys: Keys, plain: bytes) -> bytes:
    nonce = os.urandom(16)
    ciphertext = Cipher(algorithms.AES(keys[0]), modes.CTR(nonce)).encryptor().update(plain)
    return nonce + ciphertext + _mac(keys, nonce, ciphertext)


def _password(path: Path) -> bytes:
    return path.read_bytes().rstrip(b"\r\n")


def _master(repository: Path, password: bytes) -> bytes:
    """The master key (its JSON) of ``repository``, opened with ``password``."""
    for key in sorted((repository / "keys").iterdir()):
        doc = json.loads(key.read_text())
        with contextlib.suppress(ValueError):
            return _decrypt(_user_key(password, base64.b64decode(doc["salt"]), doc["N"],
                                      doc["r"], doc["p"]), base64.b64decode(doc["data"]))
    raise ValueError(f"no key of {repository} opens with this password")


def _write_key(repository: Path, password: bytes, master: bytes) -> None:
    salt = os.urandom(64)
    cheap = _user_key(password, salt, CHEAP["N"], CHEAP["r"], CHEAP["p"])
    doc = {"created": datetime.now(UTC).isoformat(), "username": "root",
           "hostname": socket.gethostname(), "kdf": "scrypt", **CHEAP,
           "salt": base64.b64encode(salt).decode(),
           "data": base64.b64encode(_encrypt(cheap, master)).decode()}
    data = json.dumps(doc).encode()
    path = repository / "keys" / hashlib.sha256(data).hexdigest()
    path.write_bytes(data)
    path.chmod(0o400)


def rekey(repository: Path, password_file: Path) -> None:
    """Every key of the local ``repository`` replaced by one under :data:`CHEAP`."""
    password = _password(password_file)
    master = _master(repository, password)
    old = sorted((repository / "keys").iterdir())
    _write_key(repository, password, master)
    for path in old:
        path.unlink()


def local_folder(repository: str, served: dict[str, str]) -> Path | None:
    """The folder on this machine that holds ``repository``: a local path, a repository of
    a rest server these tests started (:func:`serve`), or an SFTP one on loopback."""
    if repository.startswith("/"):
        return Path(repository)
    if repository.startswith("rest:"):
        for base, root in served.items():
            if repository.startswith(f"rest:{base}"):
                return Path(root) / repository.removeprefix(f"rest:{base}").strip("/")
    if repository.startswith(("sftp:", "sftp://")) and "@127.0.0.1:" in repository:
        path = repository.split("@127.0.0.1:", 1)[1]
        path = path.split("/", 1)[1] if path[:1].isdigit() else path  # sftp://u@h:port/p
        return Path("/" + path.lstrip("/"))
    return None


def _served(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()}


def serve(base_url: str, root: Path) -> None:
    """A rest server of these tests serves ``root`` at ``base_url``."""
    path = Path(restic_binary()).parent / SERVED
    served = _served(path)
    served[base_url] = str(root)
    path.write_text(json.dumps(served))


@functools.cache
def restic_binary() -> str:
    """The path of the wrapper script (made once per test process)."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if not Path(p).name.startswith(PREFIX))
    restic = shutil.which("restic", path=path)  # the real one, never this script
    if restic is None:
        return "restic"  # the tests that need it say restic is missing
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    script = folder / "restic"
    script.write_text(SCRIPT.format(restic=shlex.quote(restic),
                                    python=shlex.quote(sys.executable),
                                    module=shlex.quote(str(Path(__file__).resolve()))))
    script.chmod(0o755)
    return str(script)


def _template(restic: str, folder: Path) -> Path:
    """The session's template repository, made by the real ``restic init`` at first use."""
    template = folder / "template"
    with (folder / "template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "config").exists():
            password = folder / "template.password"
            password.write_text(secrets.token_hex(16))
            shutil.rmtree(template, ignore_errors=True)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder),
                   "RESTIC_REPOSITORY": str(template), "RESTIC_PASSWORD_FILE": str(password)}
            subprocess.run([restic, "init"], env=env, check=True, capture_output=True,
                           timeout=300)
            rekey(template, password)
    return template


def _quick_init(restic: str, folder: Path, target: Path, password_file: Path) -> None:
    template = _template(restic, folder)
    master = _master(template, _password(folder / "template.password"))
    tmp = target.with_name(f".{target.name}.init-{secrets.token_hex(4)}")
    shutil.copytree(template, tmp, ignore=shutil.ignore_patterns("keys"))
    (tmp / "keys").mkdir(mode=0o700)
    config = (tmp / "config").read_bytes()
    keys = json.loads(master)
    mk = (base64.b64decode(keys["encrypt"]), base64.b64decode(keys["mac"]["k"]),
          base64.b64decode(keys["mac"]["r"]))
    doc = json.loads(_decrypt(mk, config))
    doc["id"] = secrets.token_hex(32)  # each repository its own id (and restic cache)
    (tmp / "config").chmod(0o600)
    (tmp / "config").write_bytes(_encrypt(mk, json.dumps(doc).encode()))
    (tmp / "config").chmod(0o400)
    _write_key(tmp, _password(password_file), master)
    if target.exists():
        target.rmdir()  # an empty folder made for it (restic's init takes those too)
    tmp.rename(target)
    print(f"created restic repository {doc['id'][:10]} at {target}")


def _answers(repository: str) -> bool:
    """A server's repository: does its server take connections? (One that is down makes
    the real init fail as it should.)"""
    if repository.startswith("/"):
        return True
    rest = repository.removeprefix("rest:").removeprefix("sftp://").removeprefix("sftp:")
    at = rest.split("@", 1)[-1].removeprefix("http://").removeprefix("https://")
    host, _, tail = at.partition(":")
    digits = "".join(itertools.takewhile(str.isdigit, tail))
    try:
        with socket.create_connection((host, int(digits or 22)), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def main(restic: str, folder: str, args: list[str]) -> int:
    """``restic ARGS`` where ARGS hold ``init``: the quick one for a repository on this
    machine that does not exist yet, else the real one (its key then made cheap)."""
    repository = os.environ.get("RESTIC_REPOSITORY", "")
    password_file = os.environ.get("RESTIC_PASSWORD_FILE", "")
    target = local_folder(repository, _served(Path(folder) / SERVED))
    plain = args[-1:] == ["init"] and all(a in ("init", "-q", "--quiet") or
                                          a.startswith("-o") or a.startswith("sftp.command=")
                                          for a in args)
    if (target is not None and password_file and plain and target.parent.is_dir()
            and (not target.exists() or (target.is_dir() and not any(target.iterdir())))
            and _answers(repository)):
        _quick_init(restic, Path(folder), target, Path(password_file))
        return 0
    done = subprocess.run([restic, *args], check=False)
    if done.returncode == 0 and target is not None and password_file and (
            target / "keys").is_dir():
        rekey(target, Path(password_file))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
