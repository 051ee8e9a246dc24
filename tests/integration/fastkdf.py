"""Real restic with a cheap key derivation, for test repositories only.

``restic init`` calibrates scrypt to take about 0.5 s on the machine (N=32768, r=8, p=3
here), and every later restic command pays it again to open the repository: some 0.35 s of
CPU per command, thousands of commands in the suite. restic's own tests lower the
parameters (``repository.TestUseLowSecurityKDFParameters``); restic has no option for it.
So the test session puts :func:`restic_binary` first on PATH (tests/conftest.py): a shell
script named restic that runs the real restic for everything, and after a successful
``init`` of a repository on this machine (a local path, a rest server of these tests, SFTP
on loopback) re-encrypts its key with N=1024, r=8, p=1 (the same password, the same master
key: the repository, every pack and every command are restic's own). The daemon and the
CLI under test run unchanged; only their repositories open faster.

Key file format (restic's design document, "Keys, Encryption and MAC"): scrypt of the
password gives 64 bytes: an AES-256 key, then the Poly1305-AES key (k, r); ``data`` is
nonce || AES-256-CTR ciphertext || Poly1305-AES(ciphertext). A key file is named by the
SHA-256 of its content.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP = {"N": 1024, "r": 8, "p": 1}

SCRIPT = """#!/bin/bash
# restic, and after `restic init` its key re-encrypted with a cheap KDF (tests only)
for arg in "$@"; do
    if [ "$arg" = init ]; then
        {restic} "$@" || exit $?
        exec {python} {module} "${{RESTIC_REPOSITORY:-}}" "${{RESTIC_PASSWORD_FILE:-}}" \\
            "$(dirname "$0")/{served}"
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


def rekey(repository: Path, password_file: Path) -> None:
    """Every key of the local ``repository`` re-encrypted under :data:`CHEAP` parameters."""
    password = password_file.read_bytes().rstrip(b"\r\n")
    for old in sorted((repository / "keys").iterdir()):
        doc = json.loads(old.read_text())
        master = _decrypt(_user_key(password, base64.b64decode(doc["salt"]), doc["N"],
                                    doc["r"], doc["p"]), base64.b64decode(doc["data"]))
        salt = os.urandom(64)
        doc.update(CHEAP, salt=base64.b64encode(salt).decode(), data=base64.b64encode(
            _encrypt(_user_key(password, salt, **{k.lower(): v for k, v in CHEAP.items()}),
                     master)).decode())
        data = json.dumps(doc).encode()
        new = old.with_name(hashlib.sha256(data).hexdigest())
        new.write_bytes(data)
        new.chmod(0o400)
        old.unlink()


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
                                    module=shlex.quote(str(Path(__file__).resolve())),
                                    served=SERVED))
    script.chmod(0o755)
    return str(script)


def main(repository: str, password_file: str, served: str) -> None:
    """After a successful init: rekey what is on this machine, leave the rest alone."""
    folder = local_folder(repository, _served(Path(served)))
    if folder is not None and password_file and (folder / "keys").is_dir():
        rekey(folder, Path(password_file))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
