"""Key escrow: everything needed to recover, GPG-encrypted to the custodians.

The escrow file holds the restic password of every target, the office Ed25519 key and the
office GPG secret key, as one JSON document encrypted to each custodian's public key and
signed by the office key.  ``recover`` writes them back on a new machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.clock import Clock, iso_utc
from secops.config.schema import Config
from secops.errors import IntegrityError, SecopsError, SigningError, UsageError
from secops.files import atomic_write, ensure_private_dir, read_secret, write_secret
from secops.keys.gpg import Gpg
from secops.keys.store import load_private_pem, public_pem
from secops.layout import StateDir

FORMAT = "secops-escrow/1"
_FPR = re.compile(r"^[0-9A-Fa-f]{40}$")


def password_path(cfg: Config, target_name: str) -> Path:
    t = cfg.target(target_name)
    state = StateDir(Path(cfg.paths.state_dir))
    return Path(t.password_file) if t.password_file else state.password_file(t.name)


def build_payload(cfg: Config, gpg: Gpg, clock: Clock) -> dict[str, Any]:
    state = StateDir(Path(cfg.paths.state_dir))
    passwords = {t.name: read_secret(password_path(cfg, t.name), f"password of {t.name!r}")
                 for t in cfg.backup.targets}
    office = gpg.secret_fingerprints()
    return {
        "format": FORMAT,
        "office": {"name": cfg.office.name, "code": cfg.office.code},
        "created": iso_utc(clock.now()),
        "restic_passwords": passwords,
        "repositories": {t.name: t.repository for t in cfg.backup.targets},
        "ed25519_private_pem": read_secret(state.ed25519_key, "Ed25519 key"),
        "gpg_fingerprint": office[0] if office else None,
        "gpg_secret_key": gpg.export_secret(office[0]) if office else None,
        "config_toml": Path(cfg.source).read_text(encoding="utf-8") if cfg.source else None,
        # K_0 of the audit log: with it the custodians (and the police) check every MAC;
        # the server deletes its copy once it is in escrow (forward security).
        "audit_initial_key": _audit_initial_key(state),
        # the checkpoint chain's root, for the custodians to pin (audit verify --audit-root)
        "audit_root_pem": _audit_root(state),
    }


def _audit_root(state: StateDir) -> str | None:
    from secops.audit.log import audit_root_path

    path = audit_root_path(state.root)
    return path.read_text(encoding="ascii") if path.exists() else None


def _audit_initial_key(state: StateDir) -> str | None:
    from secops.audit.log import initial_key_path

    path = initial_key_path(state.root)
    return read_secret(path, "audit initial key") if path.exists() else None


def remove_audit_initial_key(state_dir: Path) -> bool:
    """Overwrite and delete the server's copy of K_0; True if there was one."""
    import os

    from secops.audit.log import initial_key_path

    path = initial_key_path(state_dir)
    if not path.exists():
        return False
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    return True


def audit_key_from_escrow(opened: Opened) -> bytes:
    key = opened.payload.get("audit_initial_key")
    if not key:
        raise UsageError(f"{opened.path} carries no audit log key (only the first escrow "
                         "made after 'secops init' does)")
    try:
        return bytes.fromhex(str(key).strip())
    except ValueError:
        raise IntegrityError(f"{opened.path}: the audit log key is not hex") from None


def resolve_recipients(gpg: Gpg, recipients: list[str]) -> list[str]:
    """Each ``--to`` is a fingerprint in the office keyring or a file with a public key."""
    known = set(gpg.public_fingerprints())
    fprs: list[str] = []
    for r in recipients:
        path = Path(r)
        if path.is_file():
            fprs += gpg.import_keys(path.read_text(encoding="utf-8"))
            continue
        fpr = r.replace(" ", "").upper()
        if not _FPR.match(fpr):
            raise UsageError(f"--to {r!r}: not a 40-hex-digit fingerprint nor a key file")
        if fpr not in known:
            raise UsageError(f"--to {fpr}: no such public key in {gpg.home}",
                             hint="pass the custodian's exported public key file instead")
        fprs.append(fpr)
    return sorted(set(fprs))


def write_escrow(cfg: Config, recipients: list[str], out: Path | None, clock: Clock) -> Path:
    if not recipients:
        raise UsageError("name at least one custodian with --to FPR")
    state = StateDir(Path(cfg.paths.state_dir))
    gpg = Gpg(state.gnupg)
    fprs = resolve_recipients(gpg, recipients)
    payload = build_payload(cfg, gpg, clock)
    data = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8")
    encrypted = gpg.encrypt(data, fprs, sign_with=payload["gpg_fingerprint"])
    if out is None:
        stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
        ensure_private_dir(state.escrow)
        out = state.escrow / f"escrow-{cfg.office.code}-{stamp}.asc"
    atomic_write(out, encrypted, 0o600)
    return out


@dataclass
class RecoverResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    signer: str | None = None
    signature_valid: bool = False
    office_gpg: str | None = None


@dataclass(frozen=True)
class Opened:
    path: Path
    payload: dict[str, Any]
    signer: str | None
    signature_valid: bool

    @property
    def config_toml(self) -> str | None:
        text = self.payload.get("config_toml")
        return str(text) if text else None


def open_escrow(escrow_file: Path, custodian_home: Path) -> Opened:
    """Decrypt ``escrow_file`` with a custodian's GnuPG home and check its content."""
    try:
        blob = escrow_file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read escrow file {escrow_file}: {e.strerror}") from None
    dec = Gpg(custodian_home).decrypt(blob)
    payload = _parse_payload(dec.data, escrow_file)
    return Opened(escrow_file, payload, dec.signer_fingerprint, dec.signature_valid)


def recover(cfg: Config, opened: Opened, force: bool) -> RecoverResult:
    """Write the keys of an opened escrow back under the config's state_dir."""
    escrow_file, payload = opened.path, opened.payload
    if payload["office"].get("code") != cfg.office.code:
        raise UsageError(
            f"{escrow_file} belongs to office {payload['office'].get('code')!r}, "
            f"but the config is for {cfg.office.code!r}")
    if opened.signer and payload.get("gpg_fingerprint") and \
            opened.signer != payload["gpg_fingerprint"] and opened.signature_valid:
        raise IntegrityError(f"{escrow_file} was signed by {opened.signer}, not by the "
                             f"office key it carries ({payload['gpg_fingerprint']})")
    state = StateDir(Path(cfg.paths.state_dir))
    for d in state.private_dirs():
        ensure_private_dir(d)
    result = RecoverResult(signer=opened.signer, signature_valid=opened.signature_valid)
    files: dict[Path, str] = {}
    for name, pw in payload["restic_passwords"].items():
        try:
            files[password_path(cfg, name)] = pw + "\n"
        except SecopsError:
            continue  # a target no longer in the config
    files[state.ed25519_key] = payload["ed25519_private_pem"] + "\n"
    _write_all(files, force, result)
    key = load_private_pem(payload["ed25519_private_pem"].encode("ascii"))
    atomic_write(state.ed25519_pub, public_pem(key), 0o644)
    if payload.get("gpg_secret_key"):
        office = Gpg(state.gnupg)
        office.import_keys(payload["gpg_secret_key"])
        result.office_gpg = payload.get("gpg_fingerprint")
    return result


def _parse_payload(data: bytes, path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(f"{path} decrypted, but its content is not a secops escrow") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IntegrityError(f"{path} is not a {FORMAT} file")
    for key in ("office", "restic_passwords", "ed25519_private_pem"):
        if key not in payload:
            raise IntegrityError(f"{path}: escrow content lacks {key!r}")
    return payload


def _write_all(files: dict[Path, str], force: bool, result: RecoverResult) -> None:
    conflicts = [p for p, text in files.items()
                 if p.exists() and p.read_text(encoding="utf-8") != text]
    if conflicts and not force:
        names = ", ".join(str(p) for p in conflicts)
        raise UsageError(f"refusing to overwrite existing keys that differ: {names}",
                         hint="move them aside, or pass --force if you are sure")
    for path, text in files.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            result.unchanged.append(str(path))
            continue
        write_secret(path, text)
        result.written.append(str(path))


__all__ = ["RecoverResult", "SigningError", "recover", "write_escrow"]
