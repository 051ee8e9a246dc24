"""Restic passwords and the office Ed25519 key, stored 0600 under ``state_dir/keys``."""

from __future__ import annotations

import secrets
from pathlib import Path

from secops.errors import SigningError
from secops.files import atomic_write, check_secret_file, read_secret, write_secret


def new_password() -> str:
    """A strong restic password: 256 bits from the OS CSPRNG, URL-safe text."""
    return secrets.token_urlsafe(32)


def ensure_password(path: Path) -> bool:
    """Create a password file if missing; return True if created."""
    if path.exists():
        check_secret_file(path, "password file")
        return False
    write_secret(path, new_password() + "\n")
    return True


def ensure_ed25519(key_path: Path, pub_path: Path) -> bool:
    """Create the office Ed25519 signing key (PKCS#8 PEM, 0600) and its public key."""
    if key_path.exists():
        check_secret_file(key_path, "Ed25519 key")
        if not pub_path.exists():
            atomic_write(pub_path, public_pem(load_private_pem(key_path.read_bytes())), 0o644)
        return False
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_secret(key_path, pem.decode("ascii"))
    atomic_write(pub_path, public_pem(key), 0o644)
    return True


def load_office_key(key_path: Path):  # type: ignore[no-untyped-def]
    """The office Ed25519 private key, after checking its file is private."""
    return load_private_pem(read_secret(key_path, "Ed25519 key").encode("ascii"))


def load_private_pem(data: bytes):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise SigningError(f"the Ed25519 key is not a valid PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError("the office signing key is not an Ed25519 key")
    return key


def public_pem(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    pub: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pub
