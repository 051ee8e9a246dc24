"""``secops restore`` and ``secops drill``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error, human_bytes, warn


@contextmanager
def _bar(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

    with Progress("{task.description}", BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def _problems(doc: dict[str, Any]) -> None:
    from secops.pathtext import display

    for m in doc["mismatched"]:
        error(f"DIFFERS: {display(m)}")
    for m in doc["missing"]:
        error(f"MISSING: {display(m)}")
    for m in doc.get("problems", ()):
        error(f"FAILED: {display(m)}")


@click.command("restore")
@click.argument("snapshot", metavar="SNAP")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path),
              help="An empty folder to restore into, outside the watched folders and "
                   "state_dir (links are resolved first).")
@click.option("--target", metavar="NAME", help="The target to restore from (default: first).")
@click.option("--include", "includes", multiple=True, metavar="PATH",
              help="Only this file or folder inside a watched folder (absolute original "
                   "path; restic patterns: * ? [a-z] within a name, ** for any depth); "
                   "repeatable. One that matches nothing is an error.")
@click.option("--force", is_flag=True,
              help="Restore into a folder that is not empty (refused if it holds a link).")
@click.option("--in-place", is_flag=True,
              help="Restore the watched folders over the live data, after a pinned safety "
                   "snapshot (never state_dir: the audit log stays as it is).")
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="Office Ed25519 public key (default: state_dir/keys/office-ed25519.pub).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def restore(app: AppContext, snapshot: str, to: Path | None,  # noqa: PLR0917 - click options
            target: str | None,
            includes: tuple[str, ...], force: bool, in_place: bool, public_key: Path | None,
            as_json: bool) -> int:
    """Restore SNAP (id, short id, latest, latest-before:TIME) and verify every file.

    Every restored file must be in the snapshot's signed manifest with the same SHA-256, and
    every file the manifest lists for the restore must be there; 0 files verified is a
    failure.
    """
    from secops.backup.engine import Engine
    from secops.restore.restore import Request, run_restore

    cfg = app.config()
    req = Request(snapshot, to, target, includes, force, in_place, public_key)
    with _bar(not as_json and sys.stderr.isatty(), "restore") as cb:
        outcome = run_restore(cfg, Engine.from_config(cfg), req, cb)
    doc = outcome.to_json()
    app.audit("restore.completed" if doc["ok"] else "restore.mismatch", {
        "snapshot_id": outcome.snapshot.id, "target": outcome.target, "to": str(outcome.to),
        "in_place": in_place, "safety_snapshot": outcome.safety_snapshot,
        "files_checked": doc["files_checked"], "mismatched": doc["mismatched"][:100],
        "missing": doc["missing"][:100]})
    if as_json:
        emit_json(doc)
    else:
        con = console()
        con.print(f"Restored snapshot {outcome.snapshot.short_id} from {outcome.target} "
                  f"into {outcome.to} in {outcome.duration_s:.1f} s")
        if outcome.safety_snapshot:
            con.print(f"Safety snapshot of the state before: {outcome.safety_snapshot[:8]} "
                      "(tagged pinned, pre-restore)")
        state = "[green]verified[/]" if doc["ok"] else "[bold red]VERIFICATION FAILED[/]"
        con.print(f"{doc['files_checked']} files, {human_bytes(doc['bytes'])}: {state} "
                  f"against the manifest signed by {outcome.signed_by}")
        if outcome.audit_log:
            con.print(f"The snapshot's audit log (not in the manifest; check it with "
                      f"'secops audit verify --log DIR'): {outcome.audit_log}")
    for w in outcome.warnings:
        warn(w)
    _problems(doc)
    return 0 if doc["ok"] else 1


@click.command("drill")
@click.option("--snapshot", "ref", default="latest", show_default=True, metavar="SNAP")
@click.option("--target", metavar="NAME|all", help="Target to drill (default: first; 'all').")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def drill(app: AppContext, ref: str, target: str | None, as_json: bool) -> int:
    """Restore into a scratch folder, verify every file, measure RTO/RPO, write a report."""
    from secops.backup.engine import Engine
    from secops.clock import SystemClock
    from secops.restore.drill import run_drill

    cfg = app.config()
    engine = Engine.from_config(cfg)
    names = [t.name for t in cfg.backup.targets] if target == "all" else \
        [cfg.target(target).name if target else cfg.backup.targets[0].name]
    reports = []
    for name in names:
        with _bar(not as_json and sys.stderr.isatty(), f"drill → {name}") as cb:
            reports.append(run_drill(cfg, engine, ref, name, clock=SystemClock(),
                                     on_progress=cb))
        r = reports[-1]
        app.audit("drill.completed" if r["ok"] else "drill.failed", {
            k: r.get(k) for k in ("target", "snapshot_id", "ok", "files_checked", "rto_s",
                                  "rpo_s", "report")})
    if as_json:
        emit_json(reports if target == "all" else reports[0])
    else:
        con = console()
        for r in reports:
            verdict = "[green]ok[/]" if r["ok"] else "[bold red]FAILED[/]"
            con.print(f"{r['target']}: {verdict}: snapshot {r['snapshot_id'][:8]}, "
                      f"{r['files_checked']} files, {human_bytes(r['bytes'])}, "
                      f"RTO {r['rto_s']:.1f} s, RPO {r['rpo_s']:.0f} s\n  report: {r['report']}")
    for r in reports:
        for w in r["warnings"]:
            warn(f"{r['target']}: {w}")
        _problems(r)
    return 0 if all(r["ok"] for r in reports) else 1


COMMANDS = [restore, drill]
