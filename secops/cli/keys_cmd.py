"""``secops keys escrow | recover | export-public``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json


@click.group("keys")
def keys_group() -> None:
    """Escrow, recover and export the office's keys."""


@keys_group.command("escrow")
@click.option("--to", "recipients", multiple=True, metavar="FPR|FILE", required=True,
              help="A custodian's key fingerprint (in the office keyring) or public key file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the escrow file (default: state_dir/escrow/).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def escrow(app: AppContext, recipients: tuple[str, ...], out: Path | None, as_json: bool) -> int:
    """Write restic passwords and office keys, GPG-encrypted to the custodians."""
    import hashlib

    from secops.clock import SystemClock
    from secops.keys.escrow import remove_audit_initial_key, write_escrow

    cfg = app.config()
    path = write_escrow(cfg, list(recipients), out, SystemClock())
    removed = remove_audit_initial_key(Path(cfg.paths.state_dir))
    app.audit("keys.escrowed", {"escrow": str(path), "recipients": list(recipients),
                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                "audit_initial_key_removed": removed})
    if as_json:
        emit_json({"escrow": str(path), "recipients": list(recipients),
                   "audit_initial_key_removed": removed})
    else:
        console().print(f"Escrow written to {path}\nHand a copy to each custodian; it opens "
                        "only with their private key.")
        if removed:
            console().print("The audit log's initial key is now in this escrow only and was "
                            "removed from the server: keep the escrow.")
    return 0


@keys_group.command("recover")
@click.argument("escrow_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--gnupghome", type=click.Path(file_okay=False, path_type=Path),
              help="The custodian's GnuPG home (default: $GNUPGHOME or ~/.gnupg).")
@click.option("--force", is_flag=True, help="Overwrite existing keys that differ.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def recover(app: AppContext, escrow_file: Path, gnupghome: Path | None, force: bool,
            as_json: bool) -> int:
    """Restore restic passwords and office keys from an escrow file (e.g. on a new machine).

    If the config file does not exist yet, the copy kept in the escrow is written there first.
    """
    from secops.files import atomic_write
    from secops.keys.escrow import open_escrow
    from secops.keys.escrow import recover as do_recover

    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    opened = open_escrow(escrow_file, home)
    config_written = None
    if not app.config_path.exists() and opened.config_toml:
        atomic_write(app.config_path, opened.config_toml.encode("utf-8"), 0o600)
        config_written = str(app.config_path)
    result = do_recover(app.config(), opened, force)
    app.audit("keys.recovered", {"escrow": str(escrow_file), "written": result.written,
                                 "signer": result.signer,
                                 "signature_valid": result.signature_valid})
    if as_json:
        emit_json({**vars(result), "config_written": config_written})
    else:
        con = console()
        if config_written:
            con.print(f"[green]written[/]   {config_written} (the config kept in the escrow)")
        for p in result.written:
            con.print(f"[green]written[/]   {p}")
        for p in result.unchanged:
            con.print(f"[dim]unchanged[/] {p}")
        signer = result.signer or "unknown"
        state = "good" if result.signature_valid else "not checked (office public key unknown)"
        con.print(f"Escrow signed by {signer}: {state}.")
        con.print("Next: secops snapshots, then secops restore (or a drill).")
    return 0


@keys_group.command("export-public")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write office-gpg.asc, office-ed25519.pub and audit-root.pub into.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def export_public(app: AppContext, out: Path | None, as_json: bool) -> int:
    """The office's public keys (GPG, Ed25519, the audit checkpoint root) for the police
    and custodians: hand them over in person and keep them."""
    from secops.errors import SigningError
    from secops.keys.gpg import Gpg
    from secops.layout import StateDir

    state = StateDir(Path(app.config().paths.state_dir))
    gpg = Gpg(state.gnupg)
    fprs = gpg.secret_fingerprints()
    if not fprs or not state.ed25519_pub.exists():
        raise SigningError("the office keys do not exist yet", hint="run 'secops init'")
    from secops.audit.log import audit_root_path
    from secops.keys.signature import load_public_key, public_key_id

    armored = gpg.export_public(fprs[0])
    ed = state.ed25519_pub.read_text(encoding="ascii")
    root_file = audit_root_path(state.root)
    root = root_file.read_text(encoding="ascii") if root_file.exists() else None
    root_id = public_key_id(load_public_key(root_file)) if root is not None else None
    doc = {"gpg_fingerprint": fprs[0], "gpg_public_key": armored, "ed25519_public_pem": ed,
           "ed25519_key_id": public_key_id(load_public_key(state.ed25519_pub)),
           "audit_root_pem": root, "audit_root_id": root_id}
    app.audit("keys.exported", {"gpg_fingerprint": fprs[0], "audit_root_id": root_id,
                                "out": str(out) if out else None})
    if out is not None:
        from secops.files import atomic_write

        atomic_write(out / "office-gpg.asc", armored.encode("ascii"), 0o644)
        atomic_write(out / "office-ed25519.pub", ed.encode("ascii"), 0o644)
        if root is not None:
            atomic_write(out / "audit-root.pub", root.encode("ascii"), 0o644)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"GPG fingerprint: {fprs[0]}\n\n{armored}\nEd25519 public key "
                   f"{doc['ed25519_key_id']}:\n{ed}")
        if root is not None:
            click.echo(f"Audit checkpoint root {root_id} (audit-root.pub):\n{root}")
    return 0


COMMANDS = [keys_group]
