"""``secops demo``: a scripted tour on a throw-away folder."""

from __future__ import annotations

import click

from secops.cli.context import AppContext


@click.command("demo")
@click.option("--keep-server", is_flag=True, help="Leave the demo off-site server running.")
@click.pass_obj
def demo(app: AppContext, keep_server: bool) -> int:
    """Generate a sample election folder, back it up to both targets, change it, back up."""
    from secops.demo.tour import run_tour

    return run_tour(app.config(), keep_server=keep_server)


COMMANDS = [demo]
