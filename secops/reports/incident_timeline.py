"""An incident's timeline in words (pure): the entries the incident store recorded, and the
audit records of the same span that belong to it (the monitor's freeze, an unfreeze, a
restore or a maintenance window from the command line). Each row keeps ``what`` (the code,
for machines) and gives ``label`` and ``detail`` for a reader. ``incident.md`` and the
report share it.
"""

from __future__ import annotations

from typing import Any

from secops.clock import local_text, parse_iso
from secops.reports.i18n import Words
from secops.reports.incident_audit import details

DECISIONS = ("waiting", "approved", "rejected", "expired")
APPEND_ONLY = "append-only: kept by the server"      # cli/playbook_cmd.py _unpin
PROCESS_RESULTS = ("killed", "resumed", "gone", "not permitted")


def when(text: str | None, w: Words) -> str:
    ts = parse_iso(text)
    return local_text(ts, seconds=True) if ts is not None else w.term("common", "unknown")


def timeline_row(t: dict[str, Any], w: Words, playbook: str, actions: dict[str, str]
                 ) -> dict[str, Any]:
    """One timeline entry for a reader: ``what`` (the code, for machines), ``label`` and
    ``detail`` in words."""
    what = str(t["what"])
    iw = w.table("incident")
    step = str(t.get("step") or "")
    if what == "step":
        detail = _step_detail(t, w, actions)
    elif what == "state":
        detail = iw["state_change"].format(from_=w.state(t.get("from")), to=w.state(t.get("to")),
                                           by=w.actor(t.get("by")))
    elif what == "approval.requested":
        detail = iw["approval_detail"].format(
            prompt=w.prompt(playbook, step, str(t.get("prompt") or "")), step=step,
            expires=when(t.get("expires"), w))
    elif what in ("approval.approved", "approval.rejected"):
        detail = iw["decision_detail"].format(step=step, by=w.actor(t.get("by")))
    elif what == "approval.expired":
        detail = iw["expired_detail"].format(step=step)
    elif what in ("incident.opened", "event.joined"):
        ev = t.get("event") or {}
        detail = iw["opened_detail"].format(name=w.event(ev.get("kind")),
                                            source=w.actor(ev.get("source")),
                                            severity=w.severity(ev.get("severity")))
    elif what == "acknowledged":
        detail = w.actor(t.get("by"))
    elif what == "snapshots.unpinned":
        detail = _unpinned(t, w)
    elif what == "playbook.finished":
        detail = iw["finished_detail"].format(
            name=w.playbook(str(t.get("playbook") or playbook)), result=_finished(t, w))
    elif what == "notice.recorded":
        detail = iw["notice_detail"].format(at=when(t.get("at"), w), to=t.get("to"),
                                            how=t.get("how"), by=t.get("by"),
                                            actor=w.actor(t.get("actor")))
    else:   # a kind the words do not know: its label says so; the values as they are
        detail = ", ".join(str(v) for k, v in t.items() if k not in ("time", "what")
                           and isinstance(v, str | int | float))
    return {"time": t["time"], "what": what, "label": w.record(what), "detail": detail}


def _unpinned(t: dict[str, Any], w: Words) -> str:
    targets = t.get("targets") or {}
    done = [f"{name}: " + (w.outcome("append_only") if v == APPEND_ONLY else
                           w.result(v == "ok", str(v)))
            for name, v in (targets.items() if isinstance(targets, dict) else [])]
    return w.table("incident")["unpinned_detail"].format(
        targets="; ".join(done) or w.term("common", "none"))


def _finished(t: dict[str, Any], w: Words) -> str:
    waiting = [str(s) for s in t.get("waiting") or []]
    if waiting:   # stopped (the daemon stopped) while an approval waited: not a failure
        return w.outcome("stopped_waiting").format(
            steps=", ".join(w.quoted(s) for s in waiting))
    return w.outcome("finished_ok" if t.get("ok") else "finished_bad")


def _step_detail(t: dict[str, Any], w: Words, actions: dict[str, str]) -> str:
    iw = w.table("incident")
    step, kind = str(t.get("step") or ""), t.get("type")
    got = t.get("outputs")
    outputs: dict[str, Any] = got if isinstance(got, dict) else {}
    if kind == "approval":
        decision = str(outputs.get("decision", ""))
        what = iw["approval_step"].format(step=step)
        result = w.outcome(decision) if decision in DECISIONS else w.result(t.get("ok"),
                                                                           t.get("error"))
    elif kind == "parallel":
        what, result = iw["parallel_step"].format(step=step), w.result(t.get("ok"),
                                                                       t.get("error"))
    elif kind == "if":
        what = iw["if_step"].format(step=step)
        result = w.outcome("condition_true" if outputs.get("condition") else
                           "condition_false")
    elif kind == "end":
        what, result = iw["end_step"].format(step=step), w.outcome("ended")
    else:
        action = t.get("action") or actions.get(step)
        what, result = w.action(str(action) if action else None, step), \
            w.result(t.get("ok"), t.get("error"))
    return iw["step_detail"].format(what=what, result=result)


def audit_row(rec: dict[str, Any], w: Words, resolve: Any) -> dict[str, Any]:
    """An audit record of the incident's span (not in the store's timeline) as a row:
    the monitor's freeze, an unfreeze, a restore, a maintenance window."""
    iw = w.table("incident")
    kind, d = str(rec.get("kind")), details(rec)
    if kind == "integrity.frozen":
        procs = [p for p in d.get("processes") or [] if isinstance(p, dict)]
        detail = iw["frozen_detail"].format(
            paths=d.get("paths_frozen", "?"),
            procs=", ".join(f"PID {p.get('pid')}" for p in procs if p.get("stopped"))
            or w.term("common", "none"))
    elif kind == "integrity.unfrozen":
        procs = [p for p in d.get("processes") or [] if isinstance(p, dict)]
        detail = iw["unfrozen_detail"].format(
            paths=d.get("paths_released", "?"),
            procs="; ".join(f"PID {p.get('pid')}: " + (
                w.outcome(f"process_{str(p.get('result')).replace(' ', '_')}")
                if p.get("result") in PROCESS_RESULTS else w.system(str(p.get("result"))))
                for p in procs) or w.term("common", "none"), by=w.actor(rec.get("actor")))
    elif kind in ("restore.completed", "restore.mismatch"):
        target = str(d.get("target") or "")
        detail = iw["restore_detail"].format(
            target=target, snapshot=resolve(target, str(d.get("snapshot_id") or ""))[:8],
            to=iw["in_place"] if d.get("in_place") else d.get("to"),
            files=d.get("files_checked"),
            safety=resolve(target, str(d.get("safety_snapshot") or ""))[:8]
            or w.term("common", "none"),
            result=w.outcome("passed" if kind == "restore.completed" else "not_passed"),
            by=w.actor(rec.get("actor")))
    elif kind == "maintenance.started":
        detail = iw["maintenance_detail"].format(
            start=when(d.get("start"), w), end=when(d.get("end"), w),
            reason=w.quoted(str(d.get("reason") or "")), by=w.actor(rec.get("actor")))
    else:
        detail = w.actor(rec.get("actor"))
    return {"time": rec.get("time"), "what": kind, "label": w.record(kind), "detail": detail}


def excerpt_row(rec: dict[str, Any], w: Words) -> list[str]:
    """A record of the audit excerpt as the report's §12 lists it: number, time (ISO: the
    page writes it out), what, by, and the target or step it concerns."""
    d = rec.get("data") if isinstance(rec.get("data"), dict) else {}
    assert isinstance(d, dict)
    about = [str(d["target"])] if isinstance(d.get("target"), str) else []
    about += [w.quoted(str(d["step"]))] if isinstance(d.get("step"), str) else []
    inner = details(rec)
    if not about and isinstance(inner.get("target"), str):
        about.append(str(inner["target"]))
    return [str(rec.get("seq")), str(rec.get("time")), w.record(str(rec.get("kind"))),
            w.actor(str(rec.get("actor") or "")), ", ".join(about)]
