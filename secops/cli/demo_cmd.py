"""``secops demo``: a scripted tour on a throw-away folder."""

from __future__ import annotations

import click

from secops.cli.context import AppContext


@click.command("demo")
@click.option("--keep-server", is_flag=True, help="Leave the demo off-site server running.")
@click.option("--then-run", is_flag=True, help="Run the daemon after the tour (Ctrl-C stops).")
@click.pass_obj
def demo(app: AppContext, keep_server: bool, then_run: bool) -> int:
    """Sample election folder, backups to both targets, a change, drills; then the daemon."""
    from secops.demo.tour import run_tour

    then = None
    if then_run:
        from secops.cli.daemon_cmd import run_with_logging

        path = app.config_path

        def then_fn() -> int:
            return run_with_logging(path, app.log_json)

        then = then_fn
    return run_tour(app.config(), keep_server=keep_server, then=then)


COMMANDS = [demo]
