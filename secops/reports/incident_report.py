"""The incident report for the office leadership and the police: what the personal-data
breach notice of the law in force asks for (the form and deadline come from
``law.toml``, by the incident's day), NIST SP 800-61 style sections (detection and analysis,
containment, recovery, lessons learned), the recovery and drill results, the audit excerpt
record by record, and a signature block to print, sign and stamp.

``build`` gathers the facts (the incident store, the audit log, the drill history, the
affected files that hold personal data) and composes one document of plain data;
``render_html`` and ``render_md`` (``incident_render``) are pure: the same sections in
both, Vietnamese or English. Every snapshot id the report names is the id that snapshot has
now (``backup.lineage``). The report never calls itself signed unless a signing key is named
(``signer``): the bundle that carries it is only ever written with its signature
(``bundle.make_bundle``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secops.clock import local_text, parse_iso
from secops.config.schema import Config
from secops.pathtext import display_tree
from secops.playbooks import notice
from secops.playbooks.incidents import IncidentStore
from secops.reports import incident_audit
from secops.reports.i18n import Words, lang_of, words
from secops.reports.incident_timeline import audit_row, excerpt_row, timeline_row
from secops.reports.law import Lang, Regime

FORMAT = "secops-incident-report/2"
NOTIFIED_STEPS = ("notified", "notified-late")   # the personal-data-breach playbook's
VOTER_LISTS = "danh-sach-cu-tri"
CSV_MAX_BYTES = 64 << 20
DIFF_MAX_LINES = 40
EXCERPT_MAX_ROWS = 400
__all__ = ["build", "count_records", "iso", "local", "render_html", "render_md",
           "timeline_row"]

# --- time ------------------------------------------------------------------------------------

def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str | None) -> float | None:
    return parse_iso(text)


def local(text: str | None) -> str:
    """ISO UTC -> what a person reads: local time with its offset."""
    ts = epoch(text)
    return text or "" if ts is None else local_text(ts, seconds=True)


def span(seconds: float, lang: str) -> str:
    """A duration in words: seconds below a minute, minutes and seconds below an hour."""
    w = words(lang).table("incident")
    s = int(abs(seconds))
    if s < 60:
        return w["seconds"].format(s=s) if abs(seconds) >= 1 else w["under_second"]
    if s < 3600:
        return w["minutes"].format(m=s // 60, s=s % 60)
    return w["hours"].format(h=s // 3600, m=s % 3600 // 60)


# --- gathering (I/O) -------------------------------------------------------------------------

def build(cfg: Config, store: IncidentStore, incident_id: str, lang: str, *,
          now: float | None = None, signer: str | None = None,
          audit: dict[str, Any] | None = None, bundle_name: str | None = None,
          encrypted_to: list[str] | None = None) -> dict[str, Any]:
    """Every field of the report as plain data (raises UsageError for an unknown id)."""
    at = time.time() if now is None else now
    facts = gather(cfg, store, incident_id, at)
    # for people: a file name that is not UTF-8 with its stray bytes as \xff, marked
    doc: dict[str, Any] = display_tree(compose(
        facts, lang, now=at, signer=signer, audit=audit, bundle_name=bundle_name,
        encrypted_to=encrypted_to or []))
    return doc


def incident_span(inc_event: dict[str, Any], opened: float, closed: float | None,
                  now: float) -> tuple[float, float]:
    """From the first evidence to the close (to ``now`` while open): the span whose audit
    records the report counts and the bundle's excerpt covers."""
    return min(notice.occurred(inc_event, opened), opened), closed or now


def gather(cfg: Config, store: IncidentStore, incident_id: str,
           now: float | None = None) -> dict[str, Any]:
    from secops.playbooks.summary import resolver, summary

    now = time.time() if now is None else now
    doc = summary(store, incident_id)
    inc = store.get(incident_id)
    state_dir = Path(cfg.paths.state_dir)
    since, until = incident_span(inc.event, inc.opened, inc.closed, now)
    named, span_recs = incident_audit.read(state_dir, incident_id, since, until)
    freezes = incident_audit.freeze_ids(inc.event, doc["timeline"])
    o = cfg.office
    return {
        "summary": doc, "opened_ts": inc.opened, "updated_ts": inc.updated,
        "closed_ts": inc.closed, "span": [iso(since), iso(until)],
        "office": {"name": o.name, "code": o.code, "place": o.place, "address": o.address,
                   "contact_name": o.contact_name, "contact_title": o.contact_title,
                   "contact_phone": o.contact_phone, "contact_email": o.contact_email,
                   "personal_data": o.personal_data},
        "host": socket.gethostname(),
        "acts": named, "span_acts": incident_audit.acts(span_recs, freezes),
        "freeze_started": incident_audit.freeze_times(state_dir / "state.db", freezes),
        "resolve": resolver(store),
        "drills": latest_drills(state_dir / "state.db", resolver(store)),
        "personal": personal_files(cfg, doc),
        "logged_in": _logged_in(store.folder(incident_id) / "evidence" / "users.json"),
    }


def incident_acts(state_dir: Path, incident_id: str) -> list[dict[str, Any]]:
    """The audit records that name the incident (best effort: [] when unreadable)."""
    return incident_audit.read(state_dir, incident_id, 0.0, 0.0)[0]


def latest_drills(db_path: Path, resolve: Any = None) -> list[dict[str, Any]]:
    """The latest drill of each target, its snapshot named by the id it has now."""
    from secops.restore.history import recent

    latest: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, sqlite3.Error):
        for row in recent(db_path, ""):
            latest[str(row["target"])] = row
    out = [dict(latest[t]) for t in sorted(latest)]
    for d in out if resolve else []:
        d["snapshot_id"] = resolve(str(d["target"]), str(d["snapshot_id"]))
    return out


def affected_paths(event: dict[str, Any]) -> list[str]:
    details = event.get("details") or {}
    paths = details.get("paths") or []
    found = [str(p) for p in (paths if isinstance(paths, list) else [paths])]
    for c in details.get("changes") or []:
        if isinstance(c, dict) and c.get("path"):
            found.append(str(c["path"]))
    return list(dict.fromkeys(found))


def is_voter_list(path: str) -> bool:
    return VOTER_LISTS in Path(path).parts[:-1] and path.lower().endswith(".csv")


def holds_personal_data(path: str, folders: list[str] | None) -> bool | None:
    """Whether an affected file holds personal data, as the office declares it
    (``office.personal_data``): True, False, or None (not declared: only the voter lists
    are known to). secops' own decoys (canaries) never do."""
    from secops.fim.canary import is_canary

    if is_canary(path):
        return False
    if folders is not None:
        return any(Path(path).is_relative_to(f) for f in folders)
    return True if VOTER_LISTS in Path(path).parts[:-1] else None


def count_records(data: bytes) -> tuple[int, list[str]] | None:
    """(records, field names) of a CSV list: the first row is the header unless it starts
    with a number. None when it is not readable as UTF-8 CSV."""
    try:
        rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig")))
                if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error):
        return None
    if not rows:
        return 0, []
    header = rows[0] if not rows[0][0].strip().isdigit() else []
    return len(rows) - (1 if header else 0), [h.strip() for h in header]


def personal_files(cfg: Config, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each affected file with whether it holds personal data; a CSV list that does with
    its records counted: from the pinned pre-incident snapshot when it can be read, else
    the live file, else unknown (None)."""
    folders = cfg.office.personal_data
    entries: list[dict[str, Any]] = [
        {"path": p, "personal": holds_personal_data(p, folders), "records": None,
         "fields": [], "source": None, "snapshot": None, "countable": p.lower().endswith(".csv")}
        for p in affected_paths(doc["event"])]
    lists = [e["path"] for e in entries if e["personal"] and e["countable"]]
    found = _from_snapshots(cfg, doc["snapshots"], lists) if lists else {}
    for e in entries:
        if not (e["personal"] and e["countable"]):
            continue
        got = found.get(e["path"])
        if got is None:
            data = _read_regular(Path(e["path"]))
            got = (data, None) if data is not None else None
        counted = count_records(got[0]) if got is not None else None
        if got is not None and counted is not None:
            e.update(records=counted[0], fields=counted[1],
                     source="snapshot" if got[1] else "live", snapshot=got[1])
    return entries


def _read_regular(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > CSV_MAX_BYTES:
            return None
        return f.read(CSV_MAX_BYTES)


def _from_snapshots(cfg: Config, snapshots: list[dict[str, Any]], paths: list[str]
                    ) -> dict[str, tuple[bytes, str | None]]:
    """The affected files as they were in a pinned snapshot (restic restore --include into
    a private scratch folder); {} when no snapshot can be read."""
    import tempfile

    from secops.backup.engine import Engine
    from secops.backup.restic import Restic
    from secops.clock import SystemClock
    from secops.errors import SecopsError
    from secops.files import ensure_private_dir

    names = {t.name: t for t in cfg.backup.targets}
    usable = [s for s in snapshots if s.get("target") in names]
    usable.sort(key=lambda s: not names[s["target"]].repository.startswith(("/", "local:")))
    engine = Engine(cfg, Restic(cfg.backup.restic_binary, timeout=120), SystemClock())
    scratch = Path(cfg.paths.state_dir) / "report-scratch"
    for snap in usable:
        found: dict[str, tuple[bytes, str | None]] = {}
        try:
            ensure_private_dir(scratch)
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                repo = engine.open(names[snap["target"]])
                engine.restic.restore(repo, str(snap["snapshot_id"]), Path(tmp),
                                      includes=paths)
                for p in paths:
                    data = _read_regular(Path(tmp) / p.lstrip("/"))
                    if data is not None:
                        found[p] = (data, str(snap["snapshot_id"])[:8])
        except (SecopsError, OSError):
            continue
        finally:
            with contextlib.suppress(OSError):
                scratch.rmdir()  # only when empty
        if found:
            return found
    return {}


def _logged_in(path: Path) -> list[str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return sorted({f"{u['user']}@{u.get('line') or '?'}" + (f" ({u['host']})" if
                                                                u.get("host") else "")
                       for u in doc.get("users", [])})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


# --- composing (pure) ------------------------------------------------------------------------

def compose(facts: dict[str, Any], lang: str, *, now: float, signer: str | None = None,
            audit: dict[str, Any] | None = None, bundle_name: str | None = None,
            encrypted_to: list[str] | None = None) -> dict[str, Any]:
    """The report as data in ``lang``: the codes the state holds (kind, severity, state,
    playbook, actors) kept as they are for machines; every sentence already in words."""
    lang = lang_of(lang)
    w = words(lang)
    s = facts["summary"]
    event = s["event"] or {}
    details = event.get("details") or {}
    regime = notice.regime_for(event, facts["opened_ts"])
    resolve = facts.get("resolve") or (lambda target, sid: sid)
    actions = _step_actions(facts["acts"])
    restores = _restores(s["timeline"]) + incident_audit.restores(facts["span_acts"], resolve)
    return {
        "format": FORMAT, "lang": lang, "generated": iso(now), "span": facts["span"],
        "incident": {k: s[k] for k in ("id", "kind", "severity", "state", "opened",
                                       "playbook", "closed")} | {"acked_by": s["acked_by"]},
        "office": facts["office"], "host": facts["host"],
        "law": _law(regime, lang),
        "breach": {
            "event_time": event.get("time"), "first_seen": details.get("first_seen"),
            "source": event.get("source"), "paths": affected_paths(event),
            "act": w.term_or_default("event_act", s["kind"]).format(name=w.event(s["kind"])),
            "changes": [{"kind": c.get("kind"), "path": c.get("path")}
                        for c in details.get("changes") or [] if isinstance(c, dict)],
            "parties": _parties(facts, details),
            "personal_data": personal_judgement(facts["personal"]),
            "consequences": _consequences(facts, s["kind"], w),
        },
        "measures": {"taken": _taken(facts, s["timeline"], actions, restores),
                     "planned": _planned(s, facts, w, now, regime)},
        "deadline": _deadline(facts, regime, now),
        "detection": {"score": details.get("score"), "diffs": _diffs(details),
                      "evidence_count": len(s["evidence"])},
        "containment": _containment(facts, s, actions),
        "recovery": {"restores": restores, "drills": facts["drills"],
                     "recovered_at": _state_time(s["timeline"], "recovered")},
        "lessons": [w.term_or_default("lesson", s["kind"])],
        "timeline": _timeline(facts, s, w, actions, resolve),
        "evidence": s["evidence"], "snapshots": s["snapshots"],
        "audit": _audit(audit, w),
        "signature": {"signed": signer is not None, "gpg_fingerprint": signer,
                      "bundle": bundle_name,
                      "file": f"{bundle_name}.asc" if bundle_name else None,
                      "encrypted_to": list(encrypted_to or [])},
    }


def _law(regime: Regime, lang: str) -> dict[str, Any]:
    """Which law the report follows on the incident's day, and what it cites (law.toml)."""
    code: Lang = "en" if lang == "en" else "vi"
    n = regime.breach_notice
    duty = regime.incident_duty
    to = [t for t in ((n.provision.to_en if code == "en" else n.provision.to_vi) if n else "",
                      (duty.provision.to_en if code == "en" else duty.provision.to_vi)
                      if duty else "") if t]
    return {"day": regime.at.isoformat(), "follows": regime.follows(code),
            "form": regime.breach_form_citation(code),
            "notice": regime.breach_notice_citation(code),
            "incident": regime.incident_citation(code), "recipients": to,
            "verified": regime.verified,
            "instruments": [i.id for i in regime.instruments]}


def personal_judgement(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One judgement for both languages: ``personal`` (an affected file holds personal
    data), ``none`` (the office declares where personal data is, and no affected file is
    there), ``undetermined`` (otherwise), with the personal files and their records."""
    personal = [e for e in entries if e["personal"]]
    if personal:
        judgement = "personal"
    elif entries and all(e["personal"] is False for e in entries):
        judgement = "none"
    else:
        judgement = "undetermined"
    counted = [e["records"] for e in personal if e["records"] is not None]
    return {"judgement": judgement, "files": personal,
            "total_records": sum(counted) if personal and len(counted) == len(personal)
            else None,
            "not_personal": sum(e["personal"] is False for e in entries),
            "undetermined": sum(e["personal"] is None for e in entries)}


def _consequences(facts: dict[str, Any], kind: str, w: Words) -> list[str]:
    pd = personal_judgement(facts["personal"])
    out = w.lines("consequence", "personal") if pd["judgement"] == "personal" else []
    if any(is_voter_list(e["path"]) for e in pd["files"]):
        out += w.lines("consequence", "voter_list")
    return out + w.lines_or_default("consequence", kind)


def _parties(facts: dict[str, Any], details: dict[str, Any]) -> dict[str, list[str]]:
    suspects = []
    for p in details.get("processes") or []:
        if isinstance(p, dict):
            bits = [str(p.get(k)) for k in ("name", "comm", "exe") if p.get(k)]
            who = p.get("user") or (f"uid {p['uid']}" if p.get("uid") is not None else None)
            suspects.append(f"PID {p.get('pid')} {' '.join(bits[:2])}".strip()
                            + (f" ({who})" if who else ""))
    if details.get("user"):
        suspects.append(str(details["user"]))
    s = facts["summary"]
    handlers = [s["acked_by"]] if s["acked_by"] else []
    handlers += [a["by"] for a in s["approvals"] if a.get("by")]
    handlers += [str(a.get("actor")) for a in facts["acts"] + facts["span_acts"]
                 if str(a.get("actor", "")).startswith("cli:")]
    handlers += [n["actor"] for n in s["notices"]]
    return {"suspects": suspects, "logged_in": facts["logged_in"],
            "handlers": list(dict.fromkeys(handlers))}   # actor codes (cli:root)


def _step_actions(acts: list[dict[str, Any]]) -> dict[str, str]:
    """step id -> action name, from the audit log's step records (older timelines do not
    carry the action)."""
    out: dict[str, str] = {}
    for a in acts:
        data = a.get("data") or {}
        if str(a.get("kind", "")).startswith("playbook.step.") and data.get("action"):
            out[str(data.get("step"))] = str(data["action"])
    return out


PERSON_ACTS = ("incident.acknowledged", "incident.approved", "incident.rejected",
               "incident.closed", "incident.notice_recorded", "report.incident")


def _taken(facts: dict[str, Any], timeline: list[dict[str, Any]], actions: dict[str, str],
           restores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What was done, in time order: the playbook's action steps (from the timeline, which
    has every one), the acts of people on the incident (ack, approvals, notices, close,
    the bundle), the freeze, its release and the restores from the command line."""
    out: list[dict[str, Any]] = [
        {"time": t["time"], "what": t.get("action") or actions.get(str(t.get("step"))),
         "step": t.get("step"), "ok": bool(t.get("ok")), "error": t.get("error"),
         "record": None, "already": bool((t.get("outputs") or {}).get("already"))}
        for t in timeline if t["what"] == "step" and t.get("type") == "action"]
    for a in facts["acts"]:
        if a.get("kind") in PERSON_ACTS:
            out.append({"time": a.get("time"), "what": None, "record": a.get("kind"),
                        "step": (a.get("data") or {}).get("step"), "ok": True,
                        "error": None, "by": a.get("actor")})
    for a in facts["span_acts"]:
        if a.get("kind") in ("integrity.frozen", "integrity.unfrozen"):
            out.append({"time": a.get("time"), "what": None, "record": a.get("kind"),
                        "step": None, "ok": True, "error": None, "by": a.get("actor")})
    out += [{"time": r["time"], "what": None, "record": "restore.completed" if r["ok"] else
             "restore.mismatch", "step": None, "ok": r["ok"], "error": None,
             "by": r["by"]} for r in restores if r.get("by")]
    return sorted(out, key=lambda t: epoch(t["time"]) or 0.0)


def _planned(s: dict[str, Any], facts: dict[str, Any], w: Words, now: float,
             regime: Regime) -> list[str]:
    if s["state"] == "closed":   # nothing waits any more; the pins were lifted
        return [w.term("planned", "closed").format(at=local(s["closed"]))]
    stopped = _run_stopped(s["timeline"])
    out = [w.term("planned", "waiting_stopped" if a["step"] in stopped else "waiting").format(
        prompt=w.prompt(s["playbook"], a["step"], a["prompt"] or ""), step=a["step"],
        expires=local(a["expires"])) for a in s["approvals"] if a["state"] == "waiting"]
    out += [w.term("planned", "compare"), w.term("planned", "access")]
    status = _deadline(facts, regime, now)["status"]
    if status in ("pending", "overdue") and \
            personal_judgement(facts["personal"])["judgement"] != "none":
        out.append(w.term("planned", "notify").format(
            deadline=local(_deadline(facts, regime, now)["deadline"])))
    out.append(w.term("planned", "keep"))
    return out


def _run_stopped(timeline: list[dict[str, Any]]) -> set[str]:
    """The approvals whose run ended while they waited (the daemon stopped)."""
    return {str(x) for t in timeline if t["what"] == "playbook.finished"
            for x in t.get("waiting") or []}


def _deadline(facts: dict[str, Any], regime: Regime, now: float) -> dict[str, Any]:
    """The notice deadline of the law in force, and whether and how the notice went out:
    the notices recorded (``incident notify-record``), else the breach playbook's
    ``notified`` approval."""
    s = facts["summary"]
    due = notice.deadline(s["event"] or {}, facts["opened_ts"], regime)
    sent = [{"at": n["at"], "to": n["to"], "how": n["how"], "by": n["by"],
             "actor": n["actor"], "recorded": n["recorded"]} for n in s["notices"]]
    sent += [{"at": a["decided"], "to": None, "how": None, "by": None, "actor": a["by"],
              "recorded": a["decided"]} for a in s["approvals"]
             if a["step"] in NOTIFIED_STEPS and a["state"] == "approved"]
    sent.sort(key=lambda n: epoch(n["at"]) or 0.0)
    doc: dict[str, Any] = {"deadline": iso(due.at) if due else None,
                           "since": iso(due.since) if due else None,
                           "clock": due.clock if due else None,
                           "hours": due.hours if due else None, "notices": sent,
                           "seconds_left": None}
    first_at = epoch(sent[0]["at"]) if sent else None
    if due is None:
        doc["status"] = "notified" if sent else "no_deadline"
    elif first_at is not None:
        doc["status"] = "notified" if first_at <= due.at else "notified-late"
    else:
        doc.update(status="pending" if now < due.at else "overdue",
                   seconds_left=due.at - now)
    return doc


def _diffs(details: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for c in details.get("changes") or []:
        if isinstance(c, dict) and isinstance(c.get("diff"), str) and c["diff"]:
            lines = c["diff"].splitlines()
            text = "\n".join(lines[:DIFF_MAX_LINES]) + ("\n…" if len(lines) > DIFF_MAX_LINES
                                                        else "")
            out.append({"path": str(c.get("path")), "diff": text})
    return out


def _containment(facts: dict[str, Any], s: dict[str, Any], actions: dict[str, str]
                 ) -> dict[str, Any]:
    """Time to containment: from the first evidence to the freeze (the monitor freezes
    before the playbook runs), else to the incident's move to ``contained``."""
    event = s["event"] or {}
    first = notice.occurred(event, facts["opened_ts"])
    frozen = incident_audit.first_freeze(facts["span_acts"], facts["freeze_started"])
    contained = _state_time(s["timeline"], "contained")
    at = frozen if frozen is not None else epoch(contained)
    return {"first_evidence": iso(first), "frozen_at": iso(frozen),
            "contained_at": iso(at) if at is not None else None,
            "seconds_to_contain": max(0.0, at - first) if at is not None else None,
            "steps": [t for t in _taken(facts, s["timeline"], actions, [])
                      if t["what"] in ("freeze", "snapshot") or t["record"] in (
                          "integrity.frozen", "integrity.unfrozen")],
            "snapshots": s["snapshots"]}


def _state_time(timeline: list[dict[str, Any]], state: str) -> str | None:
    return next((t["time"] for t in timeline if t["what"] == "state" and t.get("to") == state),
                None)


def _restores(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The playbook's restores and drills, from its steps' outputs (ids already current)."""
    out = []
    for t in timeline:
        o = t.get("outputs") if t["what"] == "step" else None
        if isinstance(o, dict) and "files_checked" in o:
            out.append({"time": t["time"], "step": t.get("step"), "ok": t.get("ok"),
                        "target": o.get("target"), "snapshot": o.get("snapshot"),
                        "safety_snapshot": o.get("safety_snapshot"), "by": None,
                        "files_checked": o.get("files_checked"),
                        "in_place": bool(o.get("safety_snapshot"))})
        elif isinstance(o, dict) and o and all(isinstance(v, dict) and "rto_s" in v
                                                for v in o.values()):
            out += [{"time": t["time"], "step": t.get("step"), "ok": v.get("ok"),
                     "target": name, "snapshot": v.get("snapshot_id"), "by": None,
                     "safety_snapshot": None, "files_checked": v.get("files_checked"),
                     "in_place": False} for name, v in o.items()]
    return out


def _timeline(facts: dict[str, Any], s: dict[str, Any], w: Words, actions: dict[str, str],
              resolve: Any) -> list[dict[str, Any]]:
    """The store's timeline and the span's audit acts that belong to the incident, in time
    order (the store's own order kept within a second)."""
    rows = [(1, timeline_row(t, w, s["playbook"], actions)) for t in s["timeline"]]
    rows += [(0 if a.get("kind") == "integrity.frozen" else 2, audit_row(a, w, resolve))
             for a in facts["span_acts"] if a.get("kind") != "maintenance.stopped"]
    # audit times are whole seconds: within one, the monitor's freeze (which comes before
    # the playbook) first, the other acts after the store's entries
    rows.sort(key=lambda r: (int(epoch(r[1]["time"]) or 0.0), r[0]))
    return [r for _, r in rows]


def _audit(audit: dict[str, Any] | None, w: Words) -> dict[str, Any] | None:
    """The bundle's audit excerpt: its ends and checks, and its records as rows."""
    if not audit:
        return audit
    entries = audit.get("entries") or []
    rows = [excerpt_row(r, w) for r in entries[:EXCERPT_MAX_ROWS] if isinstance(r, dict)]
    return {k: v for k, v in audit.items() if k != "entries"} | {
        "rows": rows, "rows_left_out": max(0, len(entries) - EXCERPT_MAX_ROWS),
        "checkpoint_seqs": sorted(set(audit.get("checkpoint_seqs") or []))}


# --- rendering (pure, incident_render) --------------------------------------------------------

def render_html(doc: dict[str, Any], lang: str) -> str:
    from secops.reports.incident_render import render_html as html

    return html(doc, lang)


def render_md(doc: dict[str, Any], lang: str) -> str:
    from secops.reports.incident_render import render_md as md

    return md(doc, lang)
