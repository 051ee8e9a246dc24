"""``secops``: entry point. Errors are caught here, in exactly one place."""

from __future__ import annotations

import importlib
import os
import sys

import click

from secops import __version__
from secops.cli.context import AppContext
from secops.errors import OperationalError, SecopsError

# Each command's module, imported only when that command runs (or ``--help`` lists them):
# a command pays for its own imports, not for every other command's (about 20 ms).
_COMMANDS: dict[str, str] = {
    "audit": "audit_cmd", "backup": "backup_cmd", "snapshots": "backup_cmd",
    "block": "block_cmd", "unblock": "block_cmd", "blocked": "block_cmd",
    "config": "config_cmd", "run": "daemon_cmd", "status": "daemon_cmd", "demo": "demo_cmd",
    "fim": "fim_cmd", "maintenance": "fim_cmd", "unfreeze": "fim_cmd", "init": "init_cmd",
    "keys": "keys_cmd", "logs": "logs_cmd", "playbook": "playbook_cmd",
    "incident": "playbook_cmd", "report": "report_cmd", "bundle": "report_cmd",
    "restore": "restore_cmd", "drill": "restore_cmd", "review": "review_cmd",
}


class _LazyGroup(click.Group):
    """The top-level group: commands come from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        mod = importlib.import_module(f"secops.cli.{module}")
        return next((c for c in mod.COMMANDS if c.name == cmd_name), None)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", envvar=None,
              help="Config file (default: $SECOPS_CONFIG, else /etc/secops/secops.toml).")
@click.option("--log-json", is_flag=True, help="Operational logs as JSON lines on stderr.")
@click.version_option(__version__, prog_name="secops")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_json: bool) -> None:
    """Backup, integrity monitoring and incident response for commune election data."""
    ctx.obj = AppContext(config_path, log_json)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; exit with the documented code, never with a traceback for our errors."""
    code = run(argv)
    if argv is None:
        # The real command line: every file is written and closed by now, so skip the
        # interpreter's teardown (about 20 ms of a backup's start-up budget).
        sys.stdout.flush()
        sys.stderr.flush()
        gpg = sys.modules.get("secops.keys.gpg")
        if gpg is not None:
            gpg.stop_agents()  # the agents this command started; os._exit runs no atexit
        os._exit(code)
    sys.exit(code)


def _audit_failure(argv: list[str] | None, e: SecopsError) -> None:
    """A command that failed after loading its config leaves a trace in the audit log."""
    ctx = click.get_current_context(silent=True)
    app = getattr(ctx, "obj", None) if ctx is not None else None
    cfg = app.loaded() if isinstance(app, AppContext) else None
    if cfg is None:
        return
    from secops.audit import record_safely

    record_safely(cfg.paths.state_dir, cfg.office.code, "command.failed",
                  {"argv": list(sys.argv[1:] if argv is None else argv), "error": str(e),
                   "exit_code": e.exit_code})


def run(argv: list[str] | None) -> int:
    from secops.cli.render import error

    try:
        rv = cli.main(args=argv, prog_name="secops", standalone_mode=False)
    except SecopsError as e:
        error(str(e))
        _audit_failure(argv, e)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("secops: interrupted\n")
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except Exception as e:
        sqlite3 = sys.modules.get("sqlite3")  # not imported for this: it costs start-up time
        if sqlite3 is None or not isinstance(e, sqlite3.DatabaseError):
            raise
        failure = OperationalError(
            f"a secops database is damaged or unreadable: {e}",
            hint="move state_dir/state.db aside (keep it for the investigation) and start "
                 "the daemon: it rebuilds what it needs from the folders and says so; the "
                 "audit log and the snapshots are not in it")
        error(str(failure))
        return failure.exit_code
    return rv if isinstance(rv, int) else 0
