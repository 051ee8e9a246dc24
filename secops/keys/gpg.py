"""The GnuPG adapter (python-gnupg), always on an explicit home folder.

Foreign failures become ``SigningError`` (or ``ToolMissing`` when gpg is absent).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops.errors import SecopsError, SigningError, ToolMissing
from secops.files import ensure_private_dir


@dataclass(frozen=True)
class Decrypted:
    data: bytes
    signer_fingerprint: str | None
    signature_valid: bool


@dataclass(frozen=True)
class DecryptedFile:
    path: Path
    size: int
    truncated: bool   # stopped at the cap: the plaintext is larger than what ``path`` holds


# what a pinentry needs to ask for the passphrase of the key that decrypts (nothing secret)
_PINENTRY_ENV = ("GPG_TTY", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY",
                 "DBUS_SESSION_BUS_ADDRESS")
_MAX_OUTPUT_HIT = "exceeded --max-output limit"   # gpg's log line (not translated)


class _CapReached(Exception):
    """Internal: gpg reached ``--max-output``; ends the run (never leaves this module)."""


@dataclass(frozen=True)
class Verified:
    valid: bool
    fingerprint: str | None   # the signing key's (primary) fingerprint when known
    status: str               # gpg's word for it: "signature valid", "no public key", ...
    key_id: str


_AGENT_HOMES: set[Path] = set()


def stop_agents() -> None:
    """``gpgconf --kill gpg-agent`` for every home this process used: gpg starts one agent
    per home folder and leaves it running, and leftovers hold inotify instances (128 per
    user) until none is left for anyone. Run at exit, and by tests."""
    from secops.process import base_env, run

    homes = sorted(_AGENT_HOMES)
    _AGENT_HOMES.clear()
    for home in homes:
        if not home.is_dir():
            continue
        with contextlib.suppress(SecopsError, OSError):  # at exit nothing is left to tell
            run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                env=base_env(), timeout=30)


class Gpg:
    def __init__(self, home: Path) -> None:
        import gnupg

        ensure_private_dir(home)
        if not _AGENT_HOMES:
            atexit.register(stop_agents)
        _AGENT_HOMES.add(home.resolve())
        self.home = home
        try:
            self._g: Any = gnupg.GPG(gnupghome=str(home), gpgbinary="gpg")
        except OSError:
            raise ToolMissing("gpg is not installed",
                              hint="install it: apt-get install gnupg") from None
        self._g.encoding = "utf-8"

    def secret_fingerprints(self) -> list[str]:
        return [k["fingerprint"] for k in self._g.list_keys(secret=True)]

    def public_fingerprints(self) -> list[str]:
        return [k["fingerprint"] for k in self._g.list_keys()]

    def generate_signing_key(self, name: str, email: str) -> str:
        params = self._g.gen_key_input(
            key_type="EDDSA", key_curve="ed25519", key_usage="sign",
            subkey_type="ECDH", subkey_curve="cv25519", subkey_usage="encrypt",
            name_real=name, name_email=email, name_comment="secops office key",
            expire_date=0, no_protection=True)
        result = self._g.gen_key(params)
        if not result.fingerprint:
            raise SigningError(f"gpg could not generate the office key: {result.stderr[-300:]}")
        return str(result.fingerprint)

    def import_keys(self, armored: str) -> list[str]:
        result = self._g.import_keys(armored)
        fprs = [str(f) for f in (result.fingerprints or [])]
        if not fprs:
            raise SigningError("no OpenPGP key found in the given data")
        return sorted(set(fprs))

    def export_public(self, fpr: str) -> str:
        data: str = self._g.export_keys(fpr)
        if not data:
            raise SigningError(f"no public key {fpr} in {self.home}")
        return data

    def export_secret(self, fpr: str) -> str:
        data: str = self._g.export_keys(fpr, secret=True, expect_passphrase=False)
        if not data:
            raise SigningError(f"cannot export the secret key {fpr} from {self.home}")
        return data

    def encrypt(self, data: bytes, recipients: list[str], sign_with: str | None) -> bytes:
        result = self._g.encrypt(data, recipients, sign=sign_with, armor=True,
                                 always_trust=True)
        if not result.ok:
            raise SigningError(f"gpg encryption failed: {result.status}: "
                               f"{_tail(result.stderr)}")
        return bytes(result.data)

    def sign_detached(self, data: bytes, fpr: str) -> bytes:
        """An armored detached signature of ``data`` by key ``fpr``; a missing, expired or
        revoked key is a clear ``SigningError`` (never an unsigned result)."""
        result = self._g.sign(data, keyid=fpr, detach=True, clearsign=False, binary=False)
        if not result or not getattr(result, "data", None) or result.status != "signature created":
            raise SigningError(f"gpg could not sign with the office key {fpr} "
                               f"({getattr(result, 'status', None)}): "
                               f"{_tail(getattr(result, 'stderr', ''))}",
                               hint="is the office key present and unexpired? 'gpg --homedir "
                                    f"{self.home} --list-secret-keys'")
        return bytes(result.data)

    def verify_detached(self, signature: bytes, data_path: Path) -> Verified:
        """Check a detached signature of the file at ``data_path`` against this keyring."""
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".asc") as sig:
            sig.write(signature)
            sig.flush()
            result = self._g.verify_file(sig.name, str(data_path))
        fpr = getattr(result, "pubkey_fingerprint", None) or getattr(result, "fingerprint", None)
        return Verified(bool(result.valid), str(fpr) if fpr else None,
                        str(getattr(result, "status", "") or ""),
                        str(getattr(result, "key_id", "") or ""))

    def decrypt(self, data: bytes) -> Decrypted:
        result = self._g.decrypt(data)
        if not result.ok:
            raise SigningError(
                f"gpg could not decrypt the file ({result.status}): {_tail(result.stderr)}",
                hint="use the GnuPG home of a custodian whose key the file was encrypted to "
                "(--gnupghome DIR)")
        fpr = getattr(result, "fingerprint", None) or getattr(result, "pubkey_fingerprint", None)
        return Decrypted(bytes(result.data), str(fpr) if fpr else None, bool(result.valid))

    def decrypt_file(self, src: Path, out: Path, *, max_bytes: int,
                     timeout: float = 1800) -> DecryptedFile:
        """Decrypt the file ``src`` into the new file ``out``, streaming: gpg writes the
        plaintext itself, so it never passes through this process's memory. Once the
        plaintext would exceed ``max_bytes`` gpg stops writing (``--max-output``) and is
        ended at once (left alone it would go on inflating a compression bomb to its end):
        ``truncated`` is then True. A signature inside the message is not checked
        (``--skip-verify``): check the detached one first. Other failures: ``SigningError``.
        """
        from collections import deque

        from secops import process

        seen = {"okay": False}
        said: deque[str] = deque(maxlen=6)

        def on_line(line: str) -> None:
            if _MAX_OUTPUT_HIT in line:
                raise _CapReached
            if line.startswith("[GNUPG:] DECRYPTION_OKAY"):
                seen["okay"] = True
            elif line.strip() and not line.startswith("[GNUPG:]"):
                said.append(line.strip())

        argv = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--status-fd", "1",
                "--logger-fd", "1", "--skip-verify", "--max-output", str(max_bytes),
                "--output", str(out), "--decrypt", str(src)]
        env = process.base_env() | {k: v for k in _PINENTRY_ENV if (v := os.environ.get(k))}
        try:
            done = process.run(argv, env=env, timeout=timeout, on_line=on_line)
        except _CapReached:
            return DecryptedFile(out, _file_size(out), truncated=True)
        size = _file_size(out)
        if done.returncode == 0 and not seen["okay"]:
            raise SigningError(f"{src.name} is not an encrypted OpenPGP message")
        if done.returncode != 0 or not seen["okay"]:
            raise SigningError(
                f"gpg could not decrypt {src.name} (exit {done.returncode}): "
                f"{' | '.join(list(said)[-3:]) or '(no message)'}",
                hint="use the GnuPG home of the person it was encrypted to (--gnupghome DIR)")
        return DecryptedFile(out, size, truncated=size > max_bytes)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(stderr: str, lines: int = 3) -> str:
    keep = [ln for ln in (stderr or "").splitlines() if ln and not ln.startswith("[GNUPG:]")]
    return " | ".join(keep[-lines:]) or "(no message)"
