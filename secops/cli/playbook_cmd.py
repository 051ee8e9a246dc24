"""``secops playbook list|validate|test`` and ``secops incident list|show|ack|approve|
notify-record|close``. Human output in local time with its zone; ``--json`` in UTC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error
from secops.errors import SecopsError, UsageError
from secops.reports.incident_timeline import APPEND_ONLY


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
                           "ok": all(r.ok or r.waiting for r in records),
                           "steps": [r.as_json() for r in records]}
    if as_json:
        emit_json(doc)
    else:
        con = console()
        for r in records:
            if dry_run:
                con.print(f"[bold]{r.step}[/] ({r.type}): would {r.would}")
            else:
                con.print(f"[bold]{r.step}[/] ({r.type}): {_mark(r, incident)}")
        if incident is not None:
            con.print(f"incident {incident.id}: {incident.state}")
    return 0 if dry_run or doc["ok"] else 3


def _mark(r: Any, incident: Any) -> str:
    if r.ok:
        return "[green]ok[/]"
    if r.waiting:
        return ("[yellow]waiting for approval[/] (the run stopped; answer with secops "
                f"incident approve {incident.id if incident else 'ID'} {r.step})")
    return f"[red]FAILED[/] {r.error or '(no error message)'}"


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
    """Incidents opened by playbooks: list, show, acknowledge, approve, record the notice to
    the authorities, close."""


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
        table.add_row(r["id"], r["state"], r["severity"], r["kind"], _local(r["opened"]),
                      r["playbook"])
    console().print(table)
    return 0


@incident_group.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incident_show(app: AppContext, incident_id: str, as_json: bool) -> int:
    """The incident: timeline, pinned snapshots (by the ids they have now), approvals, the
    notice deadline and the notices recorded."""
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

    def say(text: str) -> None:
        con.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"{doc['id']} {doc['state']} · {doc['severity']} · {doc['kind']} · opened "
        f"{_local(doc['opened'])} · playbook {doc['playbook']}")
    for t in doc["timeline"]:
        say(f"  {_local(t['time'])}  {t['what']} {_gist(t)}".rstrip())
    for s in doc["snapshots"]:
        say(f"  pinned on {s['target']}: {s['snapshot_id'][:8]} (secops restore "
            f"{s['snapshot_id'][:8]} --target {s['target']} --to DIR)")
    for a in doc["approvals"]:
        if a["state"] == "waiting":
            say(f"  waiting for approval: {a['step']}: {a['prompt']} (until "
                f"{_local(a['expires'])}) — secops incident approve {doc['id']} {a['step']}")
    _show_notice(say, doc)
    return 0


def _show_notice(say: Any, doc: dict[str, Any]) -> None:
    due = doc["notice_deadline"]
    for n in doc["notices"]:
        say(f"  notice sent {_local(n['at'])} to {n['to']} ({n['how']}) by {n['by']}; "
            f"recorded {_local(n['recorded'])} by {n['actor']}")
    if due is None:
        say("  notice deadline: none under the listed instruments")
        return
    since = "occurrence" if due["clock"] == "occurrence" else "detection"
    say(f"  notice deadline: {_local(due['deadline'])} ({due['hours']} h after the {since}, "
        f"{_local(due['since'])})")
    if not doc["notices"]:
        say(f"  no notice recorded: secops incident notify-record {doc['id']} --to WHOM "
            '--how "công văn số ..." --at "YYYY-MM-DD HH:MM" --by NAME')


def _gist(t: dict[str, Any]) -> str:
    """One timeline entry's detail, in a line."""
    if t["what"] == "step":
        outputs = t.get("outputs") or {}
        if outputs.get("decision") == "waiting":
            return f"{t.get('step')}: waiting for approval"
        return f"{t.get('step')}: " + ("ok" if t.get("ok") else
                                       f"FAILED {t.get('error') or '(no error message)'}")
    if t["what"] == "playbook.finished":
        waiting = t.get("waiting") or []
        return ("stopped, waiting for approval: " + ", ".join(waiting)) if waiting else \
            ("every step ok" if t.get("ok") else "some steps failed")
    if t["what"] == "notice.recorded":
        return f"{_local(t.get('at'))} to {t.get('to')} ({t.get('how')}) by {t.get('by')}"
    return str(t.get("step") or t.get("to") or "")


def _local(iso: str | None) -> str:
    """ISO UTC (JSON) -> local time with its zone, as a person reads it."""
    from secops.clock import local_text, parse_iso

    ts = parse_iso(iso)
    return local_text(ts, seconds=True) if ts is not None else (iso or "-")


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
        stopped = _stopped_waiting(store.timeline(incident_id))
    finally:
        store.close()
    app.audit("incident.rejected" if reject else "incident.approved",
              {"incident": incident_id, "step": step})
    console().print(f"{incident_id}: {step} {'rejected' if reject else 'approved'}")
    if step in stopped:
        error(f"note: the playbook run that asked for {step!r} has stopped (the daemon "
              "stopped while it waited): the decision is recorded, no further step runs")
    return 0


@incident_group.command("notify-record")
@click.argument("incident_id")
@click.option("--to", "to_whom", required=True, metavar="WHOM",
              help='Who was notified, e.g. "Công an xã Tân Kỳ" or "Cục A05, Bộ Công an".')
@click.option("--how", required=True, metavar="HOW",
              help='How: the letter\'s number, the portal, a phone call '
                   '(e.g. "công văn số 12/UBND").')
@click.option("--at", "at_text", metavar="TIME",
              help='When it was sent, local time: "2026-03-15 09:30" or "15/03/2026 09:30" '
                   "(default: now).")
@click.option("--by", "by_name", metavar="NAME",
              help="Who sent it (default: the user running this command).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incident_notify_record(app: AppContext, incident_id: str,  # noqa: PLR0917 - options
                           to_whom: str, how: str, at_text: str | None, by_name: str | None,
                           as_json: bool) -> int:
    """Record that the notice to the authorities was sent (any incident, open or closed):
    kept in UTC, in the audit log, the timeline and the report's deadline section. A
    breach playbook waiting for its "notified" approval is answered with it."""
    import time

    from secops.playbooks import notice

    now = time.time()
    at = notice.parse_local(at_text, now) if at_text else now
    to_whom, how = _one_line(to_whom, "--to"), _one_line(how, "--how")
    who = _who()
    by = _one_line(by_name, "--by") if by_name else who
    store = _store(app)
    try:
        inc = store.get(incident_id)
        began = notice.occurred(inc.event, inc.opened)
        if at < began - 60:
            from secops.clock import iso_epoch

            raise UsageError(f"--at {at_text}: before the incident began "
                             f"({_local(iso_epoch(began))})")
        doc = store.record_notice(incident_id, at=at, to=to_whom, how=how, by=by, actor=who)
        answered = _answer_notified(store, incident_id, who)
    finally:
        store.close()
    app.audit("incident.notice_recorded", {"incident": incident_id, **doc})
    for step in answered:
        app.audit("incident.approved", {"incident": incident_id, "step": step})
    if as_json:
        emit_json({"incident": incident_id, **doc, "approved": answered})
    else:
        console().print(f"{incident_id}: notice to {to_whom} ({how}) sent {_local(doc['at'])} "
                        f"by {by}, recorded" + (f"; approved {', '.join(answered)}"
                                                if answered else ""),
                        markup=False, highlight=False, soft_wrap=True)
    return 0


def _one_line(text: str, option: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        raise UsageError(f"{option}: empty")
    if len(flat) > 300:
        raise UsageError(f"{option}: longer than 300 characters")
    return flat


def _answer_notified(store: Any, incident_id: str, who: str) -> list[str]:
    """The breach playbook's "notified" approvals still waiting, answered: the notice went."""
    from secops.reports.incident_report import NOTIFIED_STEPS

    done = []
    for a in store.approvals(incident_id):
        if a["step"] in NOTIFIED_STEPS and store.approval(incident_id, a["step"]) == "waiting":
            store.decide(incident_id, a["step"], approve=True, by=who)
            done.append(a["step"])
    return done


@incident_group.command("close")
@click.argument("incident_id")
@click.pass_obj
def incident_close(app: AppContext, incident_id: str) -> int:
    """Close the incident and unpin its snapshots (retention may then remove them), except
    those another open incident or the active freeze still holds."""
    cfg = app.config()
    store = _store(app)
    try:
        inc = store.get(incident_id)
        if inc.state == "closed":
            raise UsageError(f"{incident_id} is already closed")
        unpinned, ids, kept = _unpin(cfg, store, incident_id)
        store.advance(incident_id, "closed", _who())
        store.note(incident_id, "snapshots.unpinned", {"targets": unpinned, "ids": ids,
                                                        "kept": kept})
    finally:
        store.close()
    app.audit("incident.closed", {"incident": incident_id, "unpinned": unpinned,
                                  "unpinned_ids": ids, "kept": kept})
    console().print(f"{incident_id} closed; snapshots unpinned on: "
                    f"{', '.join(k for k, v in unpinned.items() if v == 'ok') or 'none'}")
    for target, held in kept.items():
        for sid, why in held.items():
            console().print(f"  kept pinned on {target}: {sid[:8]} ({why})", markup=False)
    return 0


def _stopped_waiting(timeline: list[dict[str, Any]]) -> set[str]:
    return {str(x) for t in timeline if t["what"] == "playbook.finished"
            for x in t.get("waiting") or []}


def _unpin(cfg: Any, store: Any, incident_id: str
           ) -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict[str, str]]]:
    """Remove ``pinned`` from this incident's snapshots: those tagged ``incident-<id>`` and
    those it recorded (by the id they have now: the tag may be missing when two pins raced),
    not on append-only targets, and not one another open incident or the active freeze
    still holds. (per target "ok" or the error, the ids unpinned, the ids kept and why)."""
    from secops.backup.engine import Engine
    from secops.playbooks.summary import resolver

    resolve = resolver(store)
    mine = {(s["target"], resolve(s["target"], s["snapshot_id"]))
            for s in store.snapshots(incident_id)}
    held_ids, held_tags = _held_elsewhere(cfg, store, incident_id, resolve)
    engine = Engine.from_config(cfg)
    out: dict[str, str] = {}
    ids: dict[str, list[str]] = {}
    kept: dict[str, dict[str, str]] = {}
    for t in cfg.backup.targets:
        if t.append_only:
            out[t.name] = APPEND_ONLY
            continue
        try:
            repo = engine.open(t)
            for snap in engine.restic.snapshots(repo):
                if "pinned" not in snap.tags or not (
                        f"incident-{incident_id}" in snap.tags or (t.name, snap.id) in mine):
                    continue
                why = held_ids.get((t.name, snap.id)) or next(
                    (held_tags[tag] for tag in snap.tags if tag in held_tags), None)
                if why:
                    kept.setdefault(t.name, {})[snap.id] = why
                    continue
                engine.retag(repo, snap, remove=("pinned",))
                ids.setdefault(t.name, []).append(snap.id)
            out[t.name] = "ok"
        except SecopsError as e:
            out[t.name] = str(e)
    return out, ids, kept


def _held_elsewhere(cfg: Any, store: Any, incident_id: str, resolve: Any
                    ) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """What must stay pinned and why: the snapshots another open incident recorded, by
    (target, id); the tags that hold a snapshot (another open incident's, the active
    freeze's)."""
    from secops.fim.state import FimState

    ids: dict[tuple[str, str], str] = {}
    tags: dict[str, str] = {}
    for other in store.all(include_closed=False):
        if other.id == incident_id:
            continue
        why = f"held by the open incident {other.id}"
        tags[f"incident-{other.id}"] = why
        for s in store.snapshots(other.id):
            ids[(s["target"], resolve(s["target"], s["snapshot_id"]))] = why
    state = FimState(Path(cfg.paths.state_dir) / "state.db")
    try:
        active = state.active_freeze()
    finally:
        state.close()
    if active is not None:
        tags[f"freeze-{active.id}"] = f"held by the active freeze {active.id}"
    return ids, tags


COMMANDS = [playbook_group, incident_group]
