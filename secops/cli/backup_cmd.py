"""``secops backup now``, ``secops backup retention`` and ``secops snapshots``."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error, human_bytes, local_time, warn

if TYPE_CHECKING:
    from secops.backup.engine import Engine
    from secops.backup.models import Progress, TargetResult
    from secops.config.schema import Config


@click.group("backup")
def backup_group() -> None:
    """Back up the watched folders now, or apply retention."""


@backup_group.command("now")
@click.option("--target", "target", metavar="NAME", help="Only this target.")
@click.option("--reason", type=click.Choice(["manual", "change", "schedule", "incident"]),
              default="manual", show_default=True, help="Recorded as a snapshot tag.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_obj
def now(app: AppContext, target: str | None, reason: str, as_json: bool) -> int:
    """One backup of all watched folders to every (or one) target."""
    from secops.backup.engine import Engine

    cfg = app.config()
    engine = Engine.from_config(cfg)
    show_progress = not as_json and sys.stderr.isatty()
    started = _stamp(cfg)
    if show_progress:
        results = _with_progress(engine, target, reason)
    else:
        results = engine.backup(target, reason=reason)
    _record(cfg, results, started)
    if as_json:
        emit_json({"results": [r.to_json() for r in results]})
    else:
        _print_results(results)
    failed = [r for r in results if not r.ok]
    if failed:
        error(f"backup failed on target(s): {', '.join(r.target for r in failed)}")
        return 1 if any(r.exit_code == 1 for r in failed) else 3
    return 0


def _stamp(cfg: Config) -> float:
    """The backup's start, in the order the daemon keeps changes by (``StateDB.stamp``)."""
    from pathlib import Path

    from secops.daemon.state import StateDB

    db = StateDB(Path(cfg.paths.state_dir) / "state.db")
    try:
        return db.stamp(time.time())
    finally:
        db.close()


def _record(cfg: Config, results: list[TargetResult], started: float) -> None:
    """Manual backups count for ``secops status`` and the daemon's catch-up too."""
    from pathlib import Path

    from secops.audit import actor_cli
    from secops.clock import iso_utc
    from secops.daemon.state import StateDB, record_results

    db = StateDB(Path(cfg.paths.state_dir) / "state.db", office=cfg.office.code)
    try:
        db.ensure_targets(t.name for t in cfg.backup.targets)
        record_results(db, results, started=started, now=time.time(),
                       now_iso=iso_utc(datetime.now(UTC)), retry_max=cfg.daemon.retry_max_seconds,
                       retry_min=cfg.daemon.retry_min_seconds, actor=actor_cli())
    finally:
        db.close()


def _with_progress(engine: Engine, target: str | None, reason: str) -> list[TargetResult]:
    from rich.progress import BarColumn, DownloadColumn, TaskID, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
             TimeElapsedColumn(), console=console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(name: str, p: Progress) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"backup → {name}", total=None)
            bar.update(tasks[name], completed=p.bytes_done, total=p.total_bytes or None)

        return engine.backup(target, reason=reason, on_progress=update)


def _print_results(results: list[TargetResult]) -> None:
    from rich.table import Table

    table = Table("target", "result", "snapshot", "new", "changed", "added", "time")
    for r in results:
        table.add_row(r.target, "[green]ok[/]" if r.ok else "[red]FAILED[/]",
                      (r.snapshot_id or "")[:8], str(r.files_new), str(r.files_changed),
                      human_bytes(r.data_added), f"{r.duration_s:.1f} s")
    console().print(table)
    for r in results:
        for w in r.warnings:
            warn(f"{r.target}: {w}")
        if r.error:
            error(r.error)


@backup_group.command("retention")
@click.option("--target", "target", metavar="NAME", help="Only this target.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_obj
def retention(app: AppContext, target: str | None, dry_run: bool, as_json: bool) -> int:
    """Apply [backup.retention] on targets that are not append-only (pinned snapshots kept)."""
    from secops.backup.engine import Engine

    cfg = app.config()
    rows = Engine.from_config(cfg).retention(target, dry_run=dry_run)
    app.audit("backup.retention", {"dry_run": dry_run, "results": rows})
    if as_json:
        emit_json({"dry_run": dry_run, "results": rows})
    else:
        con = console()
        for row in rows:
            if row["skipped"]:
                con.print(f"{row['target']}: skipped: {row['skipped']}")
            elif row["ok"]:
                verb = "would remove" if dry_run else "removed"
                con.print(f"{row['target']}: {verb} {len(row['removed'])} snapshot(s), "
                          f"kept {row['kept']}")
            else:
                con.print(f"[red]{row['target']}[/]: {row['error']}")
    failed = [r["target"] for r in rows if not r["ok"]]
    if failed:
        error(f"retention failed on target(s): {', '.join(failed)}")
        return 3
    return 0


@click.command("snapshots")
@click.option("--target", "target", metavar="NAME", help="Only this target.")
@click.option("--json", "as_json", is_flag=True, help="Print snapshots as JSON.")
@click.pass_obj
def snapshots(app: AppContext, target: str | None, as_json: bool) -> int:
    """List the snapshots of every (or one) target."""
    from rich.table import Table

    from secops.backup.engine import Engine

    cfg = app.config()
    snaps, failures = Engine.from_config(cfg).snapshots(target)
    if as_json:
        emit_json([s.to_json() for s in snaps])
    else:
        table = Table("target", "id", "time", "tags", "paths")
        for s in snaps:
            tags = ", ".join(t for t in s.tags if t != "secops")
            table.add_row(s.target, s.short_id, local_time(s.time), tags, "\n".join(s.paths))
        console().print(table)
    for name, e in failures:
        error(f"target {name!r}: {e}")
    return 3 if failures else 0


COMMANDS = [backup_group, snapshots]
