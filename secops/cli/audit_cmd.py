"""``secops audit verify`` and ``secops audit checkpoint``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json
from secops.errors import SecopsError, UsageError


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="A copy to check: the audit folder, or an audit.jsonl file.")
@click.option("--checkpoints", type=click.Path(dir_okay=False, path_type=Path),
              help="checkpoints.jsonl (default: beside the log).")
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The office's Ed25519 public key (default: this server's).")
@click.option("--key-from-escrow", "escrow", type=click.Path(dir_okay=False, path_type=Path),
              help="Check every MAC with the initial key kept in this escrow file.")
@click.option("--gnupghome", type=click.Path(file_okay=False, path_type=Path),
              help="The custodian's GnuPG home that opens the escrow (default ~/.gnupg).")
@click.option("--offsite/--no-offsite", default=None,
              help="Compare with the newest checkpoint on the backup targets (default: on "
                   "for this server's own log, off for a copy).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def verify_cmd(app: AppContext, log_path: Path | None, checkpoints: Path | None,  # noqa: PLR0917
               public_key: Path | None, escrow: Path | None, gnupghome: Path | None,
               offsite: bool | None, as_json: bool) -> int:
    """Check the chain, the MACs (with --key-from-escrow), the signed checkpoints and the
    off-site anchors. Exit 1 names the first bad record and the kind of problem."""
    from secops.audit.verify import verify
    from secops.keys.signature import load_public_key
    from secops.layout import StateDir

    cfg = app.config() if log_path is None or app.config_path.exists() else None
    if log_path is None:
        if cfg is None:
            raise UsageError("no config: pass --log PATH to check a copy")
        folder, log_file = StateDir(Path(cfg.paths.state_dir)).audit, None
    elif log_path.is_dir():
        folder, log_file = log_path, None
    elif log_path.is_file():
        folder, log_file = log_path.parent, log_path
    else:
        raise UsageError(f"--log {log_path}: no such file or folder")
    if log_file is None and not (folder / "audit.jsonl").exists() and \
            not list(folder.glob("audit-*.jsonl")):
        raise UsageError(f"{folder} holds no audit log")
    if public_key is None and cfg is not None:
        default = StateDir(Path(cfg.paths.state_dir)).ed25519_pub
        public_key = default if default.exists() else None
    pub = load_public_key(public_key) if public_key is not None else None
    initial = _initial_key(escrow, gnupghome) if escrow is not None else None
    use_offsite = (log_path is None) if offsite is None else offsite
    anchors: dict[str, tuple[int, str]] = {}
    offsite_errors: dict[str, str] = {}
    if use_offsite:
        if cfg is None:
            raise UsageError("--offsite needs the config that names the backup targets")
        anchors, offsite_errors = _offsite_anchors(cfg)
    report = verify(folder, checkpoints=checkpoints, public_key=pub, initial_key=initial,
                    offsite=anchors, log_file=log_file)
    if log_path is None and cfg is not None:
        _check_key_state(report, Path(cfg.paths.state_dir))
    doc = report.as_json()
    doc["checkpoints_signature_checked"] = pub is not None
    for name, err in offsite_errors.items():
        doc["offsite"][name] = {"ok": None, "error": err}
    if cfg is not None and log_path is None:
        _record_outcome(app, doc)
    if as_json:
        emit_json(doc)
    else:
        _show(doc)
    return 0 if report.ok else 1


def _check_key_state(report: Any, state_dir: Path) -> None:
    """The MAC key only moves forward: a key that has gone past the log's end means records
    were cut off (or the log was rolled back without the key)."""
    import json

    from secops.audit.log import key_state_path

    try:
        next_seq = int(json.loads(key_state_path(state_dir).read_text())["next_seq"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    end = report.state.next_seq if report.state is not None else 0
    if next_seq > end:
        report.fail(end, "truncated", f"the MAC key has moved on to record {next_seq}, but "
                    f"the log ends at record {end - 1}: records were cut off")


def _initial_key(escrow: Path, gnupghome: Path | None) -> bytes:
    from secops.keys.escrow import audit_key_from_escrow, open_escrow

    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    return audit_key_from_escrow(open_escrow(escrow, home))


def _offsite_anchors(cfg: Any) -> tuple[dict[str, tuple[int, str]], dict[str, str]]:
    from secops.audit.verify import offsite_heads
    from secops.backup.engine import Engine

    engine = Engine.from_config(cfg)
    anchors: dict[str, tuple[int, str]] = {}
    errors: dict[str, str] = {}
    for t in cfg.backup.targets:
        try:
            repo = engine.open(t)
            best = offsite_heads(engine.restic.snapshots(repo, tags=("secops",)))
        except SecopsError as e:
            errors[t.name] = str(e)
            continue
        if best is not None:
            anchors[t.name] = best
    return anchors, errors


def _record_outcome(app: AppContext, doc: dict[str, Any]) -> None:
    if doc["ok"]:
        app.audit("audit.verified", {k: doc[k] for k in ("records", "checkpoints_verified",
                                                          "macs_checked")})
        return
    from datetime import UTC, datetime

    from secops.clock import iso_utc
    from secops.daemon.state import StateDB

    cfg = app.config()
    db = StateDB(Path(cfg.paths.state_dir) / "state.db", office=cfg.office.code)
    try:
        db.add_event(iso_utc(datetime.now(UTC)), "audit.tampered", "cli", "critical",
                     {"first_bad_seq": doc["first_bad_seq"], "problem": doc["problem"],
                      "detail": doc["detail"], "paths": []})
    finally:
        db.close()


def _show(doc: dict[str, Any]) -> None:
    out = console()
    macs = "MACs checked" if doc["macs_checked"] else "MACs not checked (no initial key)"
    if doc["ok"]:
        out.print(f"[green]audit log OK[/]: {doc['records']} records, "
                  f"{doc['checkpoints_verified']} signed checkpoints, {macs}")
    else:
        out.print(f"[bold red]AUDIT LOG TAMPERED[/]: first bad record {doc['first_bad_seq']} "
                  f"({doc['problem']}): {doc['detail']}")
        out.print(f"{doc['records']} records verified before it; {macs}")
    for name, o in doc["offsite"].items():
        if o.get("error"):
            out.print(f"[yellow]off-site {name}: not checked[/]: {o['error']}")
        else:
            out.print(f"off-site {name}: anchor at record {o['seq']}: "
                      + ("[green]matches[/]" if o["ok"] else "[red]DOES NOT MATCH[/]"))


@audit_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def checkpoint_cmd(app: AppContext, as_json: bool) -> int:
    """Sign a checkpoint of the audit log now."""
    from secops.audit.log import AuditLog, key_state_path

    cfg = app.config()
    if not key_state_path(Path(cfg.paths.state_dir)).exists():
        raise UsageError("the audit log does not exist yet", hint="run 'secops init'")
    doc = AuditLog(Path(cfg.paths.state_dir), cfg.office.code).checkpoint()
    if as_json:
        emit_json(doc)
    else:
        console().print(f"checkpoint signed at record {doc['seq']} ({doc['head'][:16]}…)")
    return 0


COMMANDS = [audit_group]
