"""``secops init``: state folders, secrets, office keys, host-key pins, repositories.

Idempotent: every step checks before it acts, and reports ``created`` or ``unchanged``.
A target that fails does not stop the others; the CLI exits 3 naming it.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path

from secops.backup.engine import Engine, repo_for
from secops.backup.targets import parse_repository
from secops.config.schema import Config, Target
from secops.errors import SecopsError, WrongPassword
from secops.files import ensure_private_dir
from secops.keys.store import ensure_ed25519, ensure_password
from secops.layout import StateDir


@dataclass
class Step:
    what: str
    status: str  # created, unchanged, failed
    detail: str = ""


@dataclass
class InitReport:
    steps: list[Step] = field(default_factory=list)

    def add(self, what: str, created: bool, detail: str = "") -> None:
        self.steps.append(Step(what, "created" if created else "unchanged", detail))

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]

    @property
    def changed(self) -> bool:
        return any(s.status == "created" for s in self.steps)


def initialise(cfg: Config, engine: Engine) -> InitReport:
    state = StateDir(Path(cfg.paths.state_dir))
    report = InitReport()
    for d in state.private_dirs():
        report.add(f"folder {d}", ensure_private_dir(d))
    report.add(f"Ed25519 office key {state.ed25519_key}",
               ensure_ed25519(state.ed25519_key, state.ed25519_pub))
    report.steps.append(_gpg_key(cfg, state))
    report.steps.append(_audit_log(cfg, state))
    _state_db(cfg, state)
    for target in cfg.backup.targets:
        report.steps.extend(_init_target(cfg, engine, state, target))
    return report


def _state_db(cfg: Config, state: StateDir) -> None:
    """state.db exists from init on: one that is gone later was lost (``state.lost``)."""
    from secops.daemon.state import StateDB

    db = StateDB(state.root / "state.db")
    try:
        db.ensure_targets(t.name for t in cfg.backup.targets)
    finally:
        db.close()


def _audit_log(cfg: Config, state: StateDir) -> Step:
    """The audit log's initial MAC key (until it goes into escrow) and its first record."""
    from secops.audit import actor_cli, chain
    from secops.audit.log import AuditLog, ensure_keys, initial_key_path

    created = ensure_keys(state.root)
    log = AuditLog(state.root, cfg.office.code)
    if log.head().seq < 0:
        k0 = bytes.fromhex(initial_key_path(state.root).read_text(encoding="ascii").strip())
        log.record("audit.genesis", actor_cli(), {
            "office": cfg.office.code, "name": cfg.office.name, "key_id": chain.key_id(k0)})
        log.checkpoint()
    log.record("init.completed", actor_cli(), {"targets": [t.name for t in
                                                           cfg.backup.targets]})
    return Step(f"audit log {state.audit / 'audit.jsonl'}",
                "created" if created else "unchanged")


def _gpg_key(cfg: Config, state: StateDir) -> Step:
    from secops.keys.gpg import Gpg

    try:
        gpg = Gpg(state.gnupg)
        existing = gpg.secret_fingerprints()
        if existing:
            return Step("GPG office signing key", "unchanged", existing[0])
        fpr = gpg.generate_signing_key(f"{cfg.office.name} (secops)",
                                       f"secops@{cfg.office.code}.invalid")
        return Step("GPG office signing key", "created", fpr)
    except SecopsError as e:
        return Step("GPG office signing key", "failed", str(e))


def _init_target(cfg: Config, engine: Engine, state: StateDir, t: Target) -> list[Step]:
    steps: list[Step] = []
    what = f"target {t.name!r}"
    generated = False
    try:
        if t.password_file is None:
            generated = ensure_password(state.password_file(t.name))
            steps.append(Step(f"{what} restic password", "created" if generated else "unchanged",
                              str(state.password_file(t.name))))
        ep = parse_repository(t.repository)
        if ep.kind == "sftp":
            from secops.keys.hostkeys import pin_host_key

            pinned = pin_host_key(t.name, ep, t.ssh_host_key_fingerprint,
                                  state.known_hosts(t.name), cfg.backup.connect_timeout_seconds)
            steps.append(Step(f"{what} SSH host key pin", "created" if pinned else "unchanged",
                              str(state.known_hosts(t.name))))
        repo = engine.open(t)
        if engine.restic.exists(repo):
            steps.append(Step(f"{what} repository", "unchanged", _shown(t)))
        else:
            engine.restic.init(repo)
            steps.append(Step(f"{what} repository", "created", _shown(t)))
    except WrongPassword as e:
        if generated:  # a fresh password never opens an existing repository: take it back
            with contextlib.suppress(FileNotFoundError):
                state.password_file(t.name).unlink()
        steps.append(Step(f"{what} repository", "failed",
                          f"{e.message}; the repository exists but this machine's password "
                          "does not open it (on a new machine: secops keys recover FILE)"))
    except (SecopsError, socket.gaierror) as e:
        steps.append(Step(f"{what}", "failed", str(e)))
    return steps


def _shown(t: Target) -> str:
    from secops.backup.targets import mask_repository

    return mask_repository(t.repository)


__all__ = ["InitReport", "initialise", "repo_for"]
