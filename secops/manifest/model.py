"""The manifest document, its canonical bytes and its Ed25519 signature (pure).

A manifest lists every file a backup covers.  Its canonical form (sorted keys, no
whitespace, UTF-8) is what is signed; the signature file holds the signer's key id and the
base64 signature.  Verification needs only the office public key.

Paths (``roots``, the keys of ``files``) go through :mod:`secops.pathtext`: a name that is
not UTF-8 is written as ``b64:`` + the base64 of its bytes and parsed back to the exact name
restic restores, so a restore verifies it like any other file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from secops.errors import IntegrityError
from secops.keys.signature import key_id, sign, verify
from secops.pathtext import decode, encode

FORMAT = "secops-manifest/1"


@dataclass(frozen=True)
class Entry:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    office: str
    created: str
    roots: tuple[str, ...]
    files: dict[str, Entry]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "office": self.office,
            "created": self.created,
            "roots": [encode(r) for r in self.roots],
            "files": {encode(p): [e.size, e.mtime_ns, e.sha256]
                      for p, e in sorted(self.files.items())},
        }

    def canonical(self) -> bytes:
        """Deterministic bytes (sorted keys, no spaces, UTF-8): what is signed."""
        import msgspec

        return msgspec.json.encode(self.to_json(), order="sorted")


def parse(data: bytes, where: str) -> Manifest:
    try:
        doc = json.loads(data.decode("utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}")
        files = {decode(str(p)): Entry(int(v[0]), int(v[1]), str(v[2]))
                 for p, v in doc["files"].items()}
        return Manifest(str(doc["office"]), str(doc["created"]),
                        tuple(decode(str(r)) for r in doc["roots"]), files)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as e:
        raise IntegrityError(f"{where}: not a valid secops manifest ({e})") from None


__all__ = ["Entry", "Manifest", "key_id", "parse", "sign", "verify"]
