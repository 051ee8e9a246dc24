"""``secops audit verify`` and ``secops audit checkpoint``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error
from secops.errors import SecopsError, UsageError


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--log", "log_path", type=click.Path(path_type=Path),
              help="A copy to check: the audit folder (or a bundle's audit/ excerpt), or an "
                   "audit.jsonl file.")
@click.option("--checkpoints", type=click.Path(dir_okay=False, path_type=Path),
              help="checkpoints.jsonl (default: beside the log).")
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The office's Ed25519 public key (default: this server's).")
@click.option("--audit-root", "audit_roots", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="audit-root.pub from the office's public keys: pins the checkpoint chain "
                   "(default: this server's).")
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
               public_key: Path | None, audit_roots: tuple[Path, ...], escrow: Path | None,
               gnupghome: Path | None, offsite: bool | None, as_json: bool) -> int:
    """Check the chain, the MACs (with --key-from-escrow), the signed checkpoint chain and
    the off-site anchors. Exit 1 names the first bad record and the kind of problem."""
    from secops.audit.verify import check_key_state, verify, verify_excerpt

    cfg, folder, log_file, excerpt = _locate(app, log_path)
    own = log_path is None
    state_dir = Path(cfg.paths.state_dir) if cfg is not None else None
    pub, roots = _keys(state_dir if own else None, public_key, audit_roots)
    initial = None
    if escrow is not None:
        initial, escrow_root = _from_escrow(escrow, gnupghome)
        if not roots and escrow_root is not None:
            roots = [escrow_root]  # the custodians' copy of the root pins the chain
    use_offsite = own if offsite is None else offsite
    anchors: dict[str, Any] = {}
    offsite_errors: dict[str, str] = {}
    if use_offsite:
        if cfg is None:
            raise UsageError("--offsite needs the config that names the backup targets")
        anchors, offsite_errors = _offsite_anchors(cfg)
    if excerpt:
        report = verify_excerpt(folder, public_key=pub, roots=roots, initial_key=initial)
    else:
        report = verify(folder, checkpoints=checkpoints, public_key=pub, roots=roots,
                        initial_key=initial, offsite=anchors, log_file=log_file,
                        live=own and state_dir is not None)
    if own and state_dir is not None:
        check_key_state(report, state_dir)
    doc = report.as_json()
    doc["checkpoints_signature_checked"] = pub is not None
    for name, err in offsite_errors.items():
        doc["offsite"][name] = {"ok": None, "error": err}
    if cfg is not None and own:
        _record_outcome(app, doc)
    if as_json:
        emit_json(doc)
    else:
        _show(doc)
    if not report.ok:
        return 1
    if offsite_errors:  # what could not be compared is not vouched for: say so by the code
        error(f"the off-site anchors of {', '.join(sorted(offsite_errors))} could not be "
              "checked; the local checks passed")
        return 3
    return 0


def _locate(app: AppContext, log_path: Path | None) -> tuple[Any, Path, Path | None, bool]:
    """(config or None, the log folder, a single log file or None, is it an excerpt)."""
    from secops.audit.verify import is_excerpt
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
    excerpt = log_path is not None and is_excerpt(folder) and \
        (log_file is None or log_file.name == "audit-excerpt.jsonl")
    if not excerpt and log_file is None and not (folder / "audit.jsonl").exists() and \
            not list(folder.glob("audit-*.jsonl")):
        raise UsageError(f"{folder} holds no audit log")
    return cfg, folder, log_file, excerpt


def _keys(own_state: Path | None, public_key: Path | None, audit_roots: tuple[Path, ...]
          ) -> tuple[Any, list[Any]]:
    """The office public key and the pinned checkpoint roots: the given files, else (for
    this server's own log) the server's."""
    from secops.audit.log import audit_root_path
    from secops.keys.signature import load_public_key
    from secops.layout import StateDir

    if own_state is not None:
        if public_key is None and StateDir(own_state).ed25519_pub.exists():
            public_key = StateDir(own_state).ed25519_pub
        if not audit_roots and audit_root_path(own_state).exists():
            audit_roots = (audit_root_path(own_state),)
    pub = load_public_key(public_key) if public_key is not None else None
    return pub, [load_public_key(p) for p in audit_roots]


def _from_escrow(escrow: Path, gnupghome: Path | None) -> tuple[bytes, Any]:
    """K_0 of the audit log, and the checkpoint chain's root if the escrow carries it."""
    from secops.keys.escrow import audit_key_from_escrow, open_escrow

    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    opened = open_escrow(escrow, home)
    root = None
    pem = opened.payload.get("audit_root_pem")
    if isinstance(pem, str):
        from cryptography.hazmat.primitives import serialization

        try:
            root = serialization.load_pem_public_key(pem.encode("ascii"))
        except ValueError:
            root = None
    return audit_key_from_escrow(opened), root


def _offsite_anchors(cfg: Any) -> tuple[dict[str, Any], dict[str, str]]:
    from secops.audit.verify import offsite_anchor
    from secops.backup.engine import Engine

    engine = Engine.from_config(cfg)
    anchors: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for t in cfg.backup.targets:
        try:
            repo = engine.open(t)
            found = offsite_anchor(engine.restic.snapshots(repo, tags=("secops",)))
        except SecopsError as e:
            errors[t.name] = str(e)
            continue
        if found.seq is not None or found.root is not None:
            anchors[t.name] = found
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
    what = "audit log excerpt" if doc.get("excerpt") else "audit log"
    if doc["ok"]:
        span = ""
        if doc.get("excerpt"):
            span = f" (records {doc['excerpt']['start_seq']} to {doc['excerpt']['end_seq']})"
        out.print(f"[green]{what} OK[/]{span}: {doc['records']} records, "
                  f"{doc['checkpoints_verified']} of them vouched for by signed checkpoints "
                  f"({doc['checkpoints_chained']} in the chain), {macs}")
    else:
        out.print(f"[bold red]{what.upper()} TAMPERED[/]: first bad record "
                  f"{doc['first_bad_seq']} ({doc['problem']}): {doc['detail']}")
        out.print(f"{doc['records']} records verified before it; {macs}")
    if doc["audit_root"] is not None:
        pinned = "[green]pinned[/]" if doc["audit_root_pinned"] else \
            "[yellow]not pinned[/] (pass --audit-root audit-root.pub from the office's " \
            "public keys to detect checkpoints re-made by someone holding the office key)"
        out.print(f"checkpoint chain root {doc['audit_root']}: {pinned}")
    newest = doc.get("newest_checkpoint")
    if newest:
        out.print(f"newest checkpoint: number {newest['n']}, record {newest['seq']}, "
                  f"{newest['time']} (compare with the paper report)")
    if doc["unvouched_from"] is not None:
        out.print(f"records from {doc['unvouched_from']} on are not yet vouched for by a "
                  "checkpoint (the next one is signed within minutes)")
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
