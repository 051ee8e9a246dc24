"""``secops init``."""

from __future__ import annotations

import click

from secops.cli.context import AppContext
from secops.cli.render import emit_json


@click.command("init")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON.")
@click.pass_obj
def init(app: AppContext, as_json: bool) -> int:
    """Create the state folder, keys and every target's repository (idempotent)."""
    from secops.backup.engine import Engine
    from secops.provision import initialise

    cfg = app.config()
    report = initialise(cfg, Engine.from_config(cfg))
    if as_json:
        emit_json({"ok": not report.failed, "changed": report.changed,
                   "steps": [vars(s) for s in report.steps]})
    else:
        colours = {"created": "green", "unchanged": "bright_black", "failed": "red"}
        for s in report.steps:
            mark = click.style(f"{s.status:<9}", fg=colours[s.status], bold=s.status == "failed")
            detail = f"  ({s.detail})" if s.detail and s.status != "failed" else ""
            click.echo(f"{mark}  {s.what}{detail}")
            if s.status == "failed":
                for line in s.detail.splitlines():
                    click.echo(f"           {line}")
        if report.failed:
            names = ", ".join(s.what for s in report.failed)
            click.echo(f"secops: error: init incomplete: {names}", err=True)
        elif not report.changed:
            click.echo("Nothing to do: everything was already initialised.")
        else:
            click.echo("Initialised.")
    return 3 if report.failed else 0


COMMANDS = [init]
