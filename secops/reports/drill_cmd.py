"""``secops report drill FILE.json`` (print a drill report again: another language, or the
snapshot's id after a pin) and ``secops report verify-drill FILE`` (check a drill report's
Ed25519 signature: what the police and the leadership run, no config needed with
``--public-key``). ``click.Command``s for the ``report`` group to attach."""

from __future__ import annotations

from pathlib import Path

import click

from secops.cli.context import AppContext


@click.command("drill")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lang", type=click.Choice(["vi", "en"]),
              help="Report language (default: office.language).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def drill(app: AppContext, file: Path, lang: str | None, as_json: bool) -> int:
    """Print a signed drill report (drill-*.json) as HTML and a signed PDF, as a new
    revision: the snapshot named by its id now, the earlier printings kept."""
    from secops.cli.render import emit_json, warn
    from secops.layout import StateDir
    from secops.reports.drill_report import print_report
    from secops.signing.outcome import pades_warning

    cfg = app.config()
    out = print_report(StateDir(Path(cfg.paths.state_dir)), file, lang or cfg.office.language,
                       signing=cfg.signing)
    app.audit("report.drill", {"json": str(file), **out})
    if (pw := pades_warning(out.get("pades"))) is not None:
        warn(pw)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"Drill report, printing {out['revision']} ({out['language']}):\n"
                   f"  page       {out['html']}\n  PDF        {out['pdf']}\n"
                   f"  signature  {out['signature']}")
        if out.get("pades"):
            from secops.signing.outcome import pades_line

            click.echo(pades_line(out["pades"], out["pdf"]))
        if out["snapshot_id"] != out["recorded_snapshot_id"]:
            click.echo(f"  snapshot   {out['snapshot_id']} (the JSON records "
                       f"{out['recorded_snapshot_id']}, its id at drill time)")
    return 0


@click.command("verify-drill")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False, path_type=Path),
              help="office-ed25519.pub from 'secops keys export-public', handed over in person "
                   "(default, on the office server: the office key in state_dir).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def verify_drill(app: AppContext, file: Path, public_key: Path | None, as_json: bool) -> int:
    """Check FILE (drill-*.json or its printed .pdf) against FILE.sig, signed by the office
    Ed25519 key. Exit 0 when it verifies, 1 when it does not, 2 when a file is missing."""
    from secops.cli.render import emit_json
    from secops.errors import ConfigError, UsageError
    from secops.keys.signature import load_public_key
    from secops.reports.drill_report import verify_file

    if public_key is None:
        from secops.layout import StateDir

        try:
            public_key = StateDir(Path(app.config().paths.state_dir)).ed25519_pub
        except ConfigError as e:
            raise UsageError(f"no --public-key and no office config ({e.message})",
                             hint="pass --public-key office-ed25519.pub (from 'secops keys "
                                  "export-public')") from None
    if not public_key.is_file():
        raise UsageError(f"--public-key {public_key}: no such file",
                         hint="office-ed25519.pub is written by 'secops keys export-public "
                              "--out DIR'")
    out = verify_file(file, load_public_key(public_key))
    if as_json:
        emit_json(out)
        return 0
    click.echo(f"{file}: verified: signed by the office Ed25519 key {out['key_id']}")
    d = out.get("drill")
    if d:
        verdict = "PASSED" if d.get("ok") else "FAILED"
        click.echo(f"  drill of target {d.get('target')} at {d.get('time')}: {verdict}; "
                   f"snapshot {d.get('snapshot_id')} (its id at drill time), "
                   f"{d.get('files_checked')} files checked")
    return 0
