"""The actions behind ``catalog.py``: each a ``run`` (real) and a ``plan`` (dry run: words,
no side effect). A failure raises a ``SecopsError``; the engine turns it into a failed step.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from secops.errors import OperationalError, UsageError
from secops.playbooks.actions_net import block_plan, block_run, unblock_plan, unblock_run
from secops.playbooks.engine import Action, Context, Plan


def event_time(ctx: Context) -> float:
    """When the incident began: the detector's first evidence, else the event's time."""
    details = ctx.event.get("details") or {}
    for text in (details.get("first_seen"), ctx.event.get("time")):
        if isinstance(text, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    import time

    return time.time()


def event_pids(ctx: Context, args: dict[str, Any]) -> list[int]:
    if args.get("pids"):
        return [int(p) for p in args["pids"]]
    details = ctx.event.get("details") or {}
    pids = [p.get("pid") for p in details.get("processes") or [] if isinstance(p, dict)]
    pids += list(details.get("pids") or [])
    return sorted({int(p) for p in pids if isinstance(p, int)})


def event_paths(ctx: Context, args: dict[str, Any]) -> list[str]:
    paths = args.get("paths") or (ctx.event.get("details") or {}).get("paths") or []
    return [str(p) for p in paths] if isinstance(paths, list) else [str(paths)]


def _folder(ctx: Context) -> Path:
    assert ctx.store is not None and ctx.incident is not None
    folder = ctx.store.folder(ctx.incident.id)
    from secops.files import ensure_private_dir

    ensure_private_dir(folder)
    return folder


def _state(ctx: Context) -> Any:
    from secops.fim.state import FimState

    return FimState(Path(ctx.cfg.paths.state_dir) / "state.db")


# -- snapshot ------------------------------------------------------------------------------

def snapshot_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.backup.engine import Engine
    from secops.fim import contain

    assert ctx.incident is not None and ctx.store is not None
    label = f"incident-{ctx.incident.id}"
    targets = args.get("targets") or [t.name for t in ctx.cfg.backup.targets]
    pinned: dict[str, Any] = {}
    if args.get("pin_pre_incident", True):
        before = event_time(ctx)
        pinned = contain.pin_pre_attack(ctx.cfg, before, label,
                                        contain.finished_before(ctx.cfg, before))
        for target, entry in pinned.items():
            if entry.get("id"):
                ctx.store.add_snapshot(ctx.incident.id, target, entry["id"],
                                       bool(entry.get("tagged")))
    engine = Engine.from_config(ctx.cfg)
    results = [r for t in targets for r in engine.backup(t, reason="incident",
                                                          extra_tags=(label,))]
    taken = {r.target: r.snapshot_id for r in results if r.ok}
    if not taken:
        raise OperationalError("the incident backup failed on every target: " +
                               "; ".join(f"{r.target}: {r.error}" for r in results))
    return {"pinned": pinned, "snapshots": taken,
            "failed": {r.target: r.error for r in results if not r.ok}}


def snapshot_plan(ctx: Context, args: dict[str, Any]) -> str:
    targets = args.get("targets") or [t.name for t in ctx.cfg.backup.targets]
    pin = ""
    if args.get("pin_pre_incident", True):
        when = datetime.fromtimestamp(event_time(ctx)).strftime("%Y-%m-%d %H:%M:%S")
        pin = f"pin the last snapshot finished before {when} (tag pinned), then "
    return f"{pin}back up now to {', '.join(targets)} (tag incident-ID)"


# -- freeze / unfreeze ---------------------------------------------------------------------

def freeze_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.fim import contain

    state = _state(ctx)
    try:
        return contain.freeze(ctx.cfg, state, event_pids(ctx, args),
                              f"playbook {ctx.playbook.id}, incident {ctx.incident_id}")
    finally:
        state.close()


def freeze_plan(ctx: Context, args: dict[str, Any]) -> str:
    pids = event_pids(ctx, args)
    who = f"stop process(es) {', '.join(map(str, pids))} (SIGSTOP)" if pids else \
        "stop the processes writing under the watched folders (SIGSTOP)"
    return f"{who}; make {', '.join(ctx.cfg.paths.watch)} immutable (chattr +i) " \
           "unless already frozen"


def unfreeze_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.fim import contain

    state = _state(ctx)
    try:
        return contain.unfreeze(state, str(args["processes"]))
    finally:
        state.close()


def unfreeze_plan(ctx: Context, args: dict[str, Any]) -> str:
    return f"lift the active freeze: release the frozen paths, {args.get('processes')} " \
           "the stopped processes"


# -- evidence ------------------------------------------------------------------------------

def evidence_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.playbooks.evidence import collect, custody_head

    assert ctx.store is not None and ctx.incident is not None
    folder = _folder(ctx) / "evidence"
    items = collect(ctx.cfg, folder, paths=event_paths(ctx, args),
                    pids=event_pids(ctx, args), incident=ctx.incident.id)
    rows = [{"seq": i.seq, "name": i.name, "kind": i.kind, "sha256": i.sha256,
             "size": i.size, "collected_at": i.collected_at} for i in items]
    ctx.store.add_evidence(ctx.incident.id, rows)
    # the last custody line's hash, kept in the timeline and (hashed) in the audit log:
    # with it, a rewritten last custody line is caught too
    return {"folder": str(folder), "items": [r["name"] for r in rows],
            "custody": str(folder / "custody.jsonl"), "custody_head": custody_head(folder)}


def evidence_plan(ctx: Context, args: dict[str, Any]) -> str:
    from secops.playbooks.evidence import collect

    plan = collect(ctx.cfg, Path("/nonexistent-dry-run"), paths=event_paths(ctx, args),
                   pids=event_pids(ctx, args), dry_run=True)
    kinds = [p["kind"] for p in plan]
    return f"collect, most volatile first: {', '.join(kinds)}; hash each into the " \
           "chain-of-custody record"


# -- notify --------------------------------------------------------------------------------

def _recipients(args: dict[str, Any]) -> list[str]:
    to = args["to"]
    return [str(x) for x in to] if isinstance(to, list) else [str(to)]


def notify_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.playbooks.notify import Outbox

    attachments: list[str] = []
    if args.get("attach_report"):
        attachments.append(report_run(ctx, {})["report"])
    outbox = Outbox(ctx.cfg)
    msgs = outbox.enqueue(to=_recipients(args), subject=str(args["subject"]),
                          body=str(args["body"]), attachments=attachments,
                          incident=ctx.incident_id)
    results = outbox.send_now(msgs)
    return {"messages": [m.id for m in msgs],
            "delivered": [r["id"] for r in results if r.get("ok")],
            "queued": [r["id"] for r in results if not r.get("ok")]}


def notify_plan(ctx: Context, args: dict[str, Any]) -> str:
    return f"send {str(args.get('subject'))!r} to {', '.join(_recipients(args))} (queued " \
           "on disk, retried while the network is down)"


# -- report --------------------------------------------------------------------------------

def report_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.playbooks.summary import write_summary

    assert ctx.store is not None and ctx.incident is not None
    lang = str(args.get("lang") or ctx.cfg.office.language)
    path = write_summary(ctx.cfg, ctx.store, ctx.incident.id, lang)
    return {"report": str(path)}


def report_plan(ctx: Context, args: dict[str, Any]) -> str:
    lang = args.get("lang") or ctx.cfg.office.language
    return f"write the incident report ({lang}) into the incident folder"


# -- upload --------------------------------------------------------------------------------

def upload_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.playbooks.upload import upload

    target = _upload_target(ctx, str(args["to"]))
    files = [Path(f) for f in args.get("files") or []] or _incident_files(ctx)
    return upload(target, files, ctx.incident_id)


def _upload_target(ctx: Context, name: str) -> Any:
    for u in ctx.cfg.playbooks.uploads:
        if u.name == name:
            return u
    raise UsageError(f"no upload target {name!r} in [[playbooks.uploads]]")


def _incident_files(ctx: Context) -> list[Path]:
    folder = _folder(ctx)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def upload_plan(ctx: Context, args: dict[str, Any]) -> str:
    try:
        u = _upload_target(ctx, str(args["to"]))
    except UsageError as e:
        return f"upload: {e.message}"
    return f"send the incident's files by SFTP to {u.user}@{u.host}:{u.port}/" \
           f"{u.remote_dir}/INCIDENT/ (host key pinned: {u.host_key_fingerprint})"


# -- command -------------------------------------------------------------------------------

def command_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops import process

    argv = _allowed(ctx, str(args["name"]))
    done = process.run(argv, env=process.base_env(),
                       timeout=ctx.cfg.playbooks.max_step_seconds)
    out = {"argv": argv, "returncode": done.returncode, "stdout": done.stdout[-4000:],
           "stderr": done.stderr[-4000:]}
    if done.returncode != 0:
        raise OperationalError(f"command {args['name']!r} exited {done.returncode}: "
                               f"{done.stderr.strip()[-300:]}")
    return out


def _allowed(ctx: Context, name: str) -> list[str]:
    argv = ctx.cfg.playbooks.commands.get(name)
    if not argv:
        raise UsageError(f"command {name!r} is not in [playbooks.commands]")
    return list(argv)


def command_plan(ctx: Context, args: dict[str, Any]) -> str:
    try:
        return f"run {_allowed(ctx, str(args['name']))} (no shell)"
    except UsageError as e:
        return f"command: {e.message}"


# -- restore / drill -----------------------------------------------------------------------

def _pinned(ctx: Context, target: str) -> str:
    assert ctx.store is not None and ctx.incident is not None
    for s in ctx.store.snapshots(ctx.incident.id):
        if s["target"] == target:
            return str(s["snapshot_id"])
    raise UsageError(f"incident {ctx.incident.id} has no pinned snapshot on {target!r}")


def restore_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.backup.engine import Engine
    from secops.restore.restore import Request, run_restore

    target = str(args.get("target") or ctx.cfg.backup.targets[0].name)
    snap = str(args.get("snapshot") or _pinned(ctx, target))
    in_place = args.get("to") == "in_place"
    to = None if in_place else _folder(ctx) / "restore"
    includes = tuple(str(p) for p in args.get("paths") or ())
    state = _state(ctx) if in_place else None
    try:
        if state is not None:  # restored voter lists are not an unauthorised change
            state.start_maintenance(30, f"restore for incident {ctx.incident_id}",
                                    f"playbook:{ctx.playbook.id}")
        outcome = run_restore(ctx.cfg, Engine.from_config(ctx.cfg),
                              Request(snap, to, target, includes, force=True,
                                      in_place=in_place, scratch=not in_place))
    finally:
        if state is not None:
            state.stop_maintenance()
            state.close()
    doc = outcome.to_json()
    if not doc["ok"]:
        raise OperationalError(f"the restore of {snap[:8]} did not verify: "
                               f"{len(doc['mismatched'])} mismatched, "
                               f"{len(doc['missing'])} missing")
    if ctx.store is not None and ctx.incident is not None:
        ctx.store.advance(ctx.incident.id, "recovered", f"playbook:{ctx.playbook.id}")
    return {"snapshot": snap, "target": target, "to": str(outcome.to),
            "files_checked": doc["files_checked"], "safety_snapshot": outcome.safety_snapshot}


def restore_plan(ctx: Context, args: dict[str, Any]) -> str:
    target = args.get("target") or ctx.cfg.backup.targets[0].name
    snap = args.get("snapshot") or "the incident's pinned pre-incident snapshot"
    where = "the live folders, after a safety snapshot" if args.get("to") == "in_place" \
        else "a folder under the incident"
    return f"restore {snap} from {target} into {where}, and verify every file against " \
           "its signed manifest"


def drill_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.backup.engine import Engine
    from secops.clock import SystemClock
    from secops.restore.drill import run_drill

    engine = Engine.from_config(ctx.cfg)
    names = [str(args["target"])] if args.get("target") else \
        [t.name for t in ctx.cfg.backup.targets]
    reports = {n: run_drill(ctx.cfg, engine, str(args.get("snapshot") or "latest"), n,
                            clock=SystemClock()) for n in names}
    bad = [n for n, r in reports.items() if not r["ok"]]
    if bad:
        raise OperationalError(f"the drill failed on {', '.join(bad)}")
    return {n: {k: r.get(k) for k in ("ok", "snapshot_id", "files_checked", "rto_s",
                                      "report")} for n, r in reports.items()}


def drill_plan(ctx: Context, args: dict[str, Any]) -> str:
    names = args.get("target") or ", ".join(t.name for t in ctx.cfg.backup.targets)
    return f"restore {args.get('snapshot') or 'latest'} from {names} into a scratch folder, " \
           "verify every file, write a signed drill report"


ACTIONS: dict[str, tuple[Action, Plan]] = {
    "snapshot": (snapshot_run, snapshot_plan),
    "freeze": (freeze_run, freeze_plan),
    "unfreeze": (unfreeze_run, unfreeze_plan),
    "collect_evidence": (evidence_run, evidence_plan),
    "notify": (notify_run, notify_plan),
    "report": (report_run, report_plan),
    "upload": (upload_run, upload_plan),
    "command": (command_run, command_plan),
    "restore": (restore_run, restore_plan),
    "drill": (drill_run, drill_plan),
    "block": (block_run, block_plan),
    "unblock": (unblock_run, unblock_plan),
}
