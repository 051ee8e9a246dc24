"""``secops playbook list|validate|test`` and ``secops incident list|show|ack|approve|close``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error
from secops.errors import SecopsError, UsageError


@click.group("playbook")
def playbook_group() -> None:
    """Incident-response playbooks (YAML, docs/playbooks.md)."""


@playbook_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_cmd(app: AppContext, as_json: bool) -> int:
    """The valid playbooks of the playbook folder; the refused ones on stderr."""
    from secops.playbooks.dispatch import load_playbooks

    playbooks, problems = load_playbooks(app.config())
    rows: list[dict[str, Any]] = [
        {"id": p.id, "name": p.name, "trigger": p.trigger.event, "severity": p.severity}
        for p in playbooks]  # trigger: the event kind (a list when several)
    if as_json:
        emit_json(rows)
    else:
        from rich.table import Table

        table = Table("id", "trigger", "severity", "name")
        for r in rows:
            trig = r["trigger"] if isinstance(r["trigger"], str) else ", ".join(r["trigger"])
            table.add_row(r["id"], trig, r["severity"], r["name"])
        console().print(table)
    for p in problems:
        error(f"refused: {p}")
    return 0


@playbook_group.command("validate")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def validate_cmd(app: AppContext, files: tuple[Path, ...]) -> int:
    """Check playbooks; exit 2 naming the file, the line and the problem."""
    from secops.playbooks.loader import PlaybookError, load_file

    limits = _limits(app)
    bad = 0
    for f in files:
        try:
            pb = load_file(f, *limits)
            console().print(f"{f}: ok ({pb.id} v{pb.version}, {len(pb.steps)} steps)")
        except PlaybookError as e:
            bad += 1
            error(e.message)
    if bad:
        raise UsageError(f"{bad} of {len(files)} playbook(s) invalid")
    return 0


def _limits(app: AppContext) -> tuple[float, int]:
    """The engine's limits from the config when there is one (validation works without)."""
    if not app.config_path.exists():
        return 900.0, 3
    cfg = app.config()
    return cfg.playbooks.max_step_seconds, cfg.playbooks.max_retries


@playbook_group.command("test")
@click.argument("playbook_id")
@click.option("--event", "event_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The event (JSON).")
@click.option("--dry-run", is_flag=True, help="Say what each step would do; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def test_cmd(app: AppContext, playbook_id: str, event_file: Path, dry_run: bool,
             as_json: bool) -> int:
    """Run a playbook on an event, as the daemon would (or, with --dry-run, walk it)."""
    from secops.playbooks.dispatch import load_playbooks, matches, run_playbook

    cfg = app.config()
    playbooks, problems = load_playbooks(cfg)
    pb = next((p for p in playbooks if p.id == playbook_id), None)
    if pb is None:
        hint = next((p for p in problems if playbook_id in p), None)
        raise UsageError(f"no valid playbook {playbook_id!r} in {cfg.playbooks.dir}",
                         hint=hint or "'secops playbook list' shows them")
    event = _read_event(event_file)
    if not matches(pb, event):
        error(f"note: this event does not match the trigger of {pb.id} "
              f"({', '.join(pb.trigger.kinds)}); running it anyway")
    log = _console_log(as_json)
    incident, new, records = run_playbook(cfg, pb, event, dry_run=dry_run, log=log)
    doc: dict[str, Any] = {"playbook": pb.id, "dry_run": dry_run,
                           "incident": incident.id if incident else None, "new_incident": new,
                           "ok": all(r.ok for r in records),
                           "steps": [r.as_json() for r in records]}
    if as_json:
        emit_json(doc)
    else:
        con = console()
        for r in records:
            if dry_run:
                con.print(f"[bold]{r.step}[/] ({r.type}): would {r.would}")
            else:
                mark = "[green]ok[/]" if r.ok else f"[red]FAILED[/] {r.error}"
                con.print(f"[bold]{r.step}[/] ({r.type}): {mark}")
        if incident is not None:
            con.print(f"incident {incident.id}: {incident.state}")
    return 0 if dry_run or doc["ok"] else 3


def _read_event(path: Path) -> dict[str, Any]:
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--event {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--event {path}: not a JSON event: {e}") from None
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
        raise UsageError(f"--event {path}: an event is an object with a 'kind' "
                         "(DESIGN.md: kind, time, source, severity, details)")
    event.setdefault("details", {})
    return event


def _console_log(quiet: bool) -> Any:
    def log(level: str, message: str) -> None:
        if not quiet or level in ("ERROR", "WARNING"):
            click.echo(f"{level.lower()}: {message}", err=True)

    return log


# -- incidents -------------------------------------------------------------------------------

@click.group("incident")
def incident_group() -> None:
    """Incidents opened by playbooks: list, show, acknowledge, approve, close."""


def _store(app: AppContext) -> Any:
    from secops.playbooks.incidents import IncidentStore

    cfg = app.config()
    return IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)


@incident_group.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only incidents not closed.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incident_list(app: AppContext, only_open: bool, as_json: bool) -> int:
    store = _store(app)
    try:
        rows = [i.summary() for i in store.all(include_closed=not only_open)]
    finally:
        store.close()
    if as_json:
        emit_json(rows)
        return 0
    from rich.table import Table

    table = Table("id", "state", "severity", "kind", "opened", "playbook")
    for r in rows:
        table.add_row(r["id"], r["state"], r["severity"], r["kind"], r["opened"],
                      r["playbook"])
    console().print(table)
    return 0


@incident_group.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incident_show(app: AppContext, incident_id: str, as_json: bool) -> int:
    from secops.playbooks.summary import summary

    store = _store(app)
    try:
        doc = summary(store, incident_id)
    finally:
        store.close()
    if as_json:
        emit_json(doc)
        return 0
    con = console()
    con.print(f"[bold]{doc['id']}[/] {doc['state']} · {doc['severity']} · {doc['kind']} · "
              f"opened {doc['opened']} · playbook {doc['playbook']}")
    for t in doc["timeline"]:
        extra = t.get("step") or t.get("to") or ""
        con.print(f"  {t['time']} {t['what']} {extra}", markup=False, highlight=False)
    for a in doc["approvals"]:
        if a["state"] == "waiting":
            con.print(f"  [yellow]waiting for approval[/]: {a['step']}: {a['prompt']} "
                      f"(until {a['expires']}) — secops incident approve {doc['id']} "
                      f"{a['step']}")
    return 0


def _who() -> str:
    from secops.audit import actor_cli

    return actor_cli()


@incident_group.command("ack")
@click.argument("incident_id")
@click.pass_obj
def incident_ack(app: AppContext, incident_id: str) -> int:
    """Acknowledge: someone is on it."""
    store = _store(app)
    try:
        store.ack(incident_id, _who())
    finally:
        store.close()
    app.audit("incident.acknowledged", {"incident": incident_id})
    console().print(f"{incident_id} acknowledged")
    return 0


@incident_group.command("approve")
@click.argument("incident_id")
@click.argument("step")
@click.option("--reject", is_flag=True, help="Refuse instead of approve.")
@click.pass_obj
def incident_approve(app: AppContext, incident_id: str, step: str, reject: bool) -> int:
    """Answer a playbook's approval step."""
    store = _store(app)
    try:
        store.decide(incident_id, step, approve=not reject, by=_who())
    finally:
        store.close()
    app.audit("incident.rejected" if reject else "incident.approved",
              {"incident": incident_id, "step": step})
    console().print(f"{incident_id}: {step} {'rejected' if reject else 'approved'}")
    return 0


@incident_group.command("close")
@click.argument("incident_id")
@click.pass_obj
def incident_close(app: AppContext, incident_id: str) -> int:
    """Close the incident and unpin its snapshots (retention may then remove them)."""
    cfg = app.config()
    store = _store(app)
    try:
        inc = store.get(incident_id)
        if inc.state == "closed":
            raise UsageError(f"{incident_id} is already closed")
        unpinned = _unpin(cfg, incident_id)
        store.advance(incident_id, "closed", _who())
        store.note(incident_id, "snapshots.unpinned", {"targets": unpinned})
    finally:
        store.close()
    app.audit("incident.closed", {"incident": incident_id, "unpinned": unpinned})
    console().print(f"{incident_id} closed; snapshots unpinned on: "
                    f"{', '.join(k for k, v in unpinned.items() if v == 'ok') or 'none'}")
    return 0


def _unpin(cfg: Any, incident_id: str) -> dict[str, str]:
    """Remove ``pinned`` from this incident's snapshots (not on append-only targets)."""
    import functools

    from secops.backup.engine import Engine

    engine = Engine.from_config(cfg)
    out: dict[str, str] = {}
    for t in cfg.backup.targets:
        if t.append_only:
            out[t.name] = "append-only: kept by the server"
            continue
        try:
            repo = engine.open(t)
            for snap in engine.restic.snapshots(repo, tags=(f"incident-{incident_id}",)):
                if "pinned" in snap.tags:
                    engine.with_lock_retry(repo, functools.partial(
                        engine.restic.tag, repo, snap.id, remove=("pinned",)))
            out[t.name] = "ok"
        except SecopsError as e:
            out[t.name] = str(e)
    return out


COMMANDS = [playbook_group, incident_group]
