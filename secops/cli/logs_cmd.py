"""``secops logs seal`` and ``secops logs verify``: the server's own logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, human_bytes, warn

if TYPE_CHECKING:
    from secops.logs.seal import SealReport, VerifyReport

NOT_CONFIGURED = ('no log files to seal: list them in the config, e.g. [logs] seal = '
                  '["/var/log/auth.log", "/var/log/syslog"]')
NO_AUDIT_KEY = ("the seal is not in the audit log: the log has no key yet (run 'secops init'); "
                "it is kept in state.db only")
COLOURS = {"ok": "green", "rotated": "green", "unsealed": "yellow", "missing": "yellow"}


@click.group("logs")
def logs() -> None:
    """Seal the server's log files into the audit log; check them for tampering."""


@logs.command("seal")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def logs_seal(app: AppContext, as_json: bool) -> int:
    """Record each [logs] seal file's identity and the hash of its content so far."""
    from secops.logs.seal import seal, seal_paths

    cfg = app.config()
    if not seal_paths(cfg):
        if as_json:
            emit_json({"files": [], "missing": [], "refused": [], "audit_recorded": False,
                       "detail": NOT_CONFIGURED})
        else:
            console().print(NOT_CONFIGURED, markup=False)
        return 0
    report = seal(cfg)
    if as_json:
        emit_json(report.as_json())
    else:
        _show_seal(report)
    if not report.recorded:
        warn(NO_AUDIT_KEY)
    return 0


@logs.command("verify")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def logs_verify(app: AppContext, as_json: bool) -> int:
    """Check the sealed files (edits, truncation, deletion, rotation) and the journal.

    Exit 1 on any problem, 3 when a required journal check could not run."""
    from secops.logs.seal import record_outcome, seal_paths, verify

    cfg = app.config()
    report = verify(cfg)
    configured = bool(seal_paths(cfg))
    if configured or (report.journal or {}).get("ran"):
        record_outcome(cfg, report, source="cli")
    doc: dict[str, Any] = report.as_json()
    if not configured:
        doc["detail"] = NOT_CONFIGURED
    if as_json:
        emit_json(doc)
    else:
        _show_verify(report, configured)
    if report.problems:
        return 1
    return 0 if report.ok else 3


def _show_seal(report: SealReport) -> None:
    from rich.markup import escape

    out = console()
    for s in report.files:
        out.print(f"[green]sealed[/]   {escape(s.path)}  {human_bytes(s.size)}  "
                  f"sha256 {s.sha256[:16]}…")
    for path in report.missing:
        out.print(f"[yellow]missing[/]  {escape(path)}  (no such file; nothing sealed)")
    for r in report.refused:
        out.print(f"[red]refused[/]  {escape(r.path)}  {escape(r.detail)}")


def _show_verify(report: VerifyReport, configured: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if not configured:
        out.print(NOT_CONFIGURED, markup=False)
    if report.files:
        table = Table("file", "status", "detail")
        for f in report.files:
            colour = COLOURS.get(f.status, "bold red")
            table.add_row(escape(f.path), f"[{colour}]{f.status}[/]", escape(f.detail))
        out.print(table)
    j = report.journal
    if j is not None:
        colour = "green" if j.get("ok") and not j.get("unverified") else (
            "yellow" if j.get("ok") else "bold red")
        out.print(f"journal: [{colour}]{escape(str(j.get('detail', '')))}[/]")
    out.print("[green]no tampering found[/]" if report.ok else
              f"[bold red]{len(report.problems)} problem(s)[/]" if report.problems else
              "[yellow]the journal check could not run[/]")


COMMANDS = [logs]
