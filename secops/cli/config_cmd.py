"""``secops config check``."""

from __future__ import annotations

import click

from secops.cli.context import AppContext
from secops.cli.render import emit_json


@click.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the normalised config as JSON.")
@click.pass_obj
def check(app: AppContext, as_json: bool) -> int:
    """Validate the config (and its secret files); print it normalised, secrets masked."""
    from secops.config.render import check_files, normalised

    cfg = app.config()
    problems = check_files(cfg)
    doc = normalised(cfg)
    if as_json:
        emit_json({"ok": not problems, "config": doc, "problems": problems})
    else:
        import tomli_w

        click.echo(f"# {cfg.source}: valid" + ("" if not problems else ", with problems below"))
        click.echo(tomli_w.dumps(doc).rstrip())
        for p in problems:
            click.echo(f"secops: error: {p}", err=True)
    return 2 if problems else 0


COMMANDS = [config_group]
