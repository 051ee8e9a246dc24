"""Where things live under ``state_dir`` (DESIGN.md, "Files a person may look for")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Canary (decoy) files carry this in their name: backups and the baseline leave them out.
CANARY_MARK = "secops-canary"


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def gnupg(self) -> Path:
        return self.root / "gnupg"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def escrow(self) -> Path:
        return self.root / "escrow"

    @property
    def ed25519_key(self) -> Path:
        return self.keys / "office-ed25519.key"

    @property
    def ed25519_pub(self) -> Path:
        return self.keys / "office-ed25519.pub"

    def password_file(self, target: str) -> Path:
        return self.keys / f"restic-{target}.password"

    def known_hosts(self, target: str) -> Path:
        return self.ssh / f"{target}.known_hosts"

    def private_dirs(self) -> tuple[Path, ...]:
        return (self.root, self.keys, self.gnupg, self.ssh, self.cache, self.reports,
                self.audit, self.escrow)
