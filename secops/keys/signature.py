"""Detached Ed25519 signatures of byte strings (manifests, drill reports).

The signature document is JSON: ``{"alg": "ed25519", "key_id": ..., "signature": base64}``.
``key_id`` names the public key (first 16 hex of the SHA-256 of its raw bytes), so a
signature by another key is reported as such, not merely as "invalid".
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from secops.errors import IntegrityError, SigningError


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: SHA-256 of its raw bytes, first 16 hex."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_id(public_key: Any) -> str:
    """``key_id`` of an Ed25519 public key object."""
    from cryptography.hazmat.primitives import serialization

    return key_id(public_key.public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw))


def sign(data: bytes, private_key: Any) -> bytes:
    """The signature document (JSON) for ``data`` under an Ed25519 private key."""
    sig = private_key.sign(data)
    doc = {"alg": "ed25519", "key_id": public_key_id(private_key.public_key()),
           "signature": base64.b64encode(sig).decode("ascii")}
    return json.dumps(doc, sort_keys=True).encode("ascii")


def verify(data: bytes, signature_doc: bytes, public_key: Any, where: str) -> None:
    """Raise ``IntegrityError`` unless ``signature_doc`` is a valid signature of ``data``."""
    from cryptography.exceptions import InvalidSignature

    try:
        doc = json.loads(signature_doc.decode("ascii"))
        sig = base64.b64decode(doc["signature"], validate=True)
        signer = str(doc.get("key_id", "?"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise IntegrityError(f"{where}: the signature file is unreadable") from None
    office = public_key_id(public_key)
    if signer != office:
        raise IntegrityError(
            f"{where}: signed by another key ({signer}), not by the office key ({office})")
    try:
        public_key.verify(sig, data)
    except InvalidSignature:
        raise IntegrityError(f"{where}: BAD SIGNATURE: the content was changed after "
                             "it was signed") from None


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from a PEM file (``secops keys export-public``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SigningError(f"public key {path} does not exist",
                           hint="pass --public-key FILE ('secops keys export-public')") from None
    except ValueError as e:
        raise SigningError(f"{path} is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path} is not an Ed25519 public key")
    return key
