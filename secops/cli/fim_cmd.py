"""``secops fim baseline|scan|verify``, ``secops maintenance start|stop`` and
``secops unfreeze``."""

from __future__ import annotations

import getpass
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, human_bytes
from secops.clock import iso_epoch
from secops.errors import UsageError

_iso = iso_epoch


def _who() -> str:
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user} (uid {os.getuid()}) via the command line"


def _record(app: AppContext, kind: str, severity: str, details: dict[str, Any]) -> None:
    from secops.daemon.state import StateDB

    cfg = app.config()
    db = StateDB(Path(cfg.paths.state_dir) / "state.db", office=cfg.office.code)
    try:
        db.add_event(_iso(time.time()), kind, "cli", severity, details)
    finally:
        db.close()


@click.group("fim")
def fim() -> None:
    """Integrity monitoring by hand: baseline, scan (stat short-circuit), verify (re-hash)."""


def _fim_run(app: AppContext, mode: str, as_json: bool) -> int:
    from secops.fim.baseline import Baseline
    from secops.fim.scan import fim_excludes, run
    from secops.fim.state import FimState

    cfg = app.config()
    for i, w in enumerate(cfg.paths.watch):
        if not Path(w).is_dir():
            raise UsageError(f"paths.watch[{i}]: {w} does not exist or is not a folder")
    db_path = Path(cfg.paths.state_dir) / "state.db"
    baseline = Baseline(db_path)
    state = FimState(db_path)
    try:
        if mode != "baseline" and baseline.count() == 0:
            raise UsageError("there is no integrity baseline yet: run 'secops fim baseline' "
                             "first (the daemon builds one on its first start)")
        canaries: list[str] = []
        touched: list[str] = []
        if cfg.integrity.canaries:
            from secops.fim.canary import check_canaries, place

            if mode == "baseline":
                canaries, touched = place(cfg.paths.watch, cfg.integrity.canary_depth,
                                          cfg.paths.exclude, baseline)
            else:
                canaries, touched = check_canaries(baseline)
        report = run(cfg.paths.watch, fim_excludes(cfg.paths.exclude, cfg.paths.state_dir),
                     baseline, mode, processes=True)
        unauthorized: list[dict[str, Any]] = []
        if cfg.integrity.protect:  # (the rules and their diffs cost imports: only if any)
            from secops.fim.protect import Protected

            protected = Protected(cfg, baseline)
            if mode == "baseline":
                protected.init_shadows(baseline.records())
            unauthorized = protected.judge(report.changes, datetime.now(),
                                           state.maintenance() is not None)
    finally:
        baseline.close()
        state.close()
    stealth = [c.as_json() for c in report.changes if c.stealth]
    if touched:
        _record(app, "canary.touched", "critical", {"paths": touched})
    if unauthorized:
        _record(app, "integrity.unauthorized_change", "high",
                {"paths": [u["path"] for u in unauthorized], "changes": unauthorized[:100]})
    if stealth:
        _record(app, "integrity.unauthorized_change", "high",
                {"paths": [s["path"] for s in stealth], "changes": stealth[:100],
                 "reason": "content changed behind unchanged size and modification time"})
    doc = {"mode": mode, "files": report.files, "hashed": report.hashed,
           "hashed_bytes": report.hashed_bytes, "seconds": round(report.seconds, 3),
           "changes": [c.as_json() for c in report.changes], "unreadable": report.unreadable,
           "unauthorized": unauthorized, "canaries": len(canaries),
           "canaries_touched": touched}
    if as_json:
        emit_json(doc)
    else:
        _show(doc, report.changes)
    return 1 if unauthorized or stealth or touched else 0


def _show(doc: dict[str, Any], changes: list[Any]) -> None:
    from rich.table import Table

    from secops.pathtext import display  # a name that is not UTF-8: \xff, marked

    out = console()
    out.print(f"{doc['mode']}: {doc['files']} files, {doc['hashed']} hashed "
              f"({human_bytes(doc['hashed_bytes'])}) in {doc['seconds']:.2f} s")
    if changes:
        table = Table("change", "path", "detail")
        for c in changes[:500]:
            detail = f"from {display(c.old_path)}" if c.old_path else ""
            if c.kind == "meta":
                j = c.as_json()
                detail = f"mode {j['mode_before']}→{j['mode_after']}, owner " \
                         f"{j['owner_before']}→{j['owner_after']}"
            if c.stealth:
                detail = "content changed, timestamps unchanged"
            table.add_row(c.kind, display(c.path), detail)
        out.print(table)
    for u in doc["unauthorized"]:
        out.print(f"[bold red]unauthorised change[/] {u['kind']} {display(u['path'])} "
                  f"(rule {', '.join(u['rule'])}; windows {', '.join(u['windows']) or 'none'})")
        if u.get("diff"):
            out.print(u["diff"], markup=False, highlight=False)
    for path in doc["canaries_touched"]:
        out.print(f"[bold red]canary file changed or removed[/] {display(path)}")
    for line in doc["unreadable"]:
        out.print(f"[yellow]unreadable[/] {display(line)}")


@fim.command("baseline")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def fim_baseline(app: AppContext, as_json: bool) -> int:
    """Record every watched file anew (and place the canary files)."""
    return _fim_run(app, "baseline", as_json)


@fim.command("scan")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def fim_scan(app: AppContext, as_json: bool) -> int:
    """Compare with the baseline; unchanged metadata means no re-hash."""
    return _fim_run(app, "scan", as_json)


@fim.command("verify")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def fim_verify(app: AppContext, as_json: bool) -> int:
    """Re-hash every file (finds content changed behind restored timestamps)."""
    return _fim_run(app, "verify", as_json)


@click.group("maintenance")
def maintenance() -> None:
    """Declared maintenance windows: protected files may change during one."""


@maintenance.command("start")
@click.option("--minutes", type=click.FloatRange(1, 24 * 60), required=True)
@click.option("--reason", required=True, help="Why (recorded).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def maintenance_start(app: AppContext, minutes: float, reason: str, as_json: bool) -> int:
    """Open a maintenance window now, for MINUTES."""
    from secops.fim.state import FimState

    if not reason.strip():
        raise UsageError("--reason must say why")
    cfg = app.config()
    state = FimState(Path(cfg.paths.state_dir) / "state.db")
    try:
        m = state.start_maintenance(minutes, reason.strip(), _who())
    finally:
        state.close()
    doc = {"id": m.id, "start": _iso(m.started), "end": _iso(m.ends), "reason": m.reason,
           "by": m.who}
    _record(app, "maintenance.started", "info", doc)
    if as_json:
        emit_json(doc)
    else:
        console().print(f"maintenance window {m.id} open until "
                        f"{datetime.fromtimestamp(m.ends).strftime('%H:%M')}: {m.reason}")
    return 0


@maintenance.command("stop")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def maintenance_stop(app: AppContext, as_json: bool) -> int:
    """Close the open maintenance window."""
    from secops.fim.state import FimState

    cfg = app.config()
    state = FimState(Path(cfg.paths.state_dir) / "state.db")
    try:
        m = state.stop_maintenance()
    finally:
        state.close()
    doc: dict[str, Any] = {"stopped": m is not None}
    if m is not None:
        doc.update({"id": m.id, "reason": m.reason, "by": _who()})
        _record(app, "maintenance.stopped", "info", doc)
    if as_json:
        emit_json(doc)
    else:
        console().print(f"maintenance window {m.id} closed" if m else
                        "no maintenance window is open")
    return 0


@click.command("unfreeze")
@click.option("--resume", "how", flag_value="resume",
              help="Let the stopped processes continue (a false alarm).")
@click.option("--kill", "how", flag_value="kill", help="Kill the stopped processes.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def unfreeze(app: AppContext, how: str | None, as_json: bool) -> int:
    """Undo a containment freeze after review: files writable again, stopped processes
    resumed or killed. Pre-attack snapshots stay pinned until the incident is closed."""
    from secops.fim import contain
    from secops.fim.state import FimState

    cfg = app.config()
    state = FimState(Path(cfg.paths.state_dir) / "state.db")
    try:
        doc = contain.unfreeze(state, how)
    finally:
        state.close()
    if not doc["unfrozen"]:
        if as_json:
            emit_json(doc)
        else:
            console().print("nothing is frozen")
        return 0
    doc["by"] = _who()
    _record(app, "integrity.unfrozen", "info", doc)
    if as_json:
        emit_json(doc)
    else:
        console().print(f"freeze {doc['freeze_id']} lifted: {doc['paths_released']} path(s) "
                        "writable again; " + ", ".join(f"pid {p['pid']} {p['result']}"
                                                       for p in doc["processes"]))
    return 0


COMMANDS = [fim, maintenance, unfreeze]
