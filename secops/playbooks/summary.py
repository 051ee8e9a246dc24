"""The incident's summary (JSON and Markdown) in its folder: what happened, what was done.

``summary`` is the incident as recorded, with every snapshot id it names as it is now
(``restic tag`` rewrites a snapshot under a new id: ``backup.lineage``), the notices sent
to the authorities and the notice deadline of the law in force: ``incident show --json``,
the report and the bundle read it. ``write_summary`` writes ``incident.json`` and
``incident.md`` (the attachment of the first notification) in the report's words and in
local time. The signed, printable report and the evidence bundle for the police are the
reports module's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from secops import pathtext
from secops.clock import iso_epoch, local_text
from secops.config.schema import Config
from secops.files import atomic_write, ensure_private_dir
from secops.playbooks.incidents import IncidentStore

Resolve = Callable[[str, str], str]


def resolver(store: IncidentStore) -> Resolve:
    """(target, snapshot id) -> the id that snapshot has now."""
    from secops.backup import lineage

    db = store.state_dir / "state.db"
    return lambda target, snapshot_id: lineage.current(db, target, snapshot_id)


def summary(store: IncidentStore, incident_id: str) -> dict[str, Any]:
    from secops.playbooks import notice
    from secops.playbooks.engine import current_ids

    inc = store.get(incident_id)
    resolve = resolver(store)
    snapshots = [s | {"snapshot_id": resolve(s["target"], s["snapshot_id"])}
                 for s in store.snapshots(incident_id)]
    timeline = [t | {"outputs": current_ids(t["outputs"], resolve)}
                if t.get("what") == "step" and isinstance(t.get("outputs"), dict) else t
                for t in store.timeline(incident_id)]
    due = notice.deadline(inc.event, inc.opened, notice.regime_for(inc.event, inc.opened))
    return {**inc.summary(), "closed": iso_epoch(inc.closed) if inc.closed else None,
            "event": inc.event, "acked_by": inc.acked_by, "timeline": timeline,
            "evidence": store.evidence(incident_id), "snapshots": snapshots,
            "approvals": store.approvals(incident_id),
            "notices": store.notices(incident_id),
            "notice_deadline": None if due is None else {
                "clock": due.clock, "since": iso_epoch(due.since), "hours": due.hours,
                "deadline": iso_epoch(due.at)}}


def write_summary(cfg: Config, store: IncidentStore, incident_id: str, lang: str) -> Path:
    doc = summary(store, incident_id)
    folder = store.folder(incident_id)
    ensure_private_dir(folder)
    # exact in the JSON (a file name that is not UTF-8 as b64:...), readable in Markdown
    atomic_write(folder / "incident.json", (pathtext.dumps(doc, indent=1, default=str)
                                            + "\n").encode(), 0o600)
    path = folder / "incident.md"
    atomic_write(path, (markdown(cfg, pathtext.display_tree(doc), lang) + "\n"
                        ).encode("utf-8"), 0o600)
    return path


def markdown(cfg: Config, doc: dict[str, Any], lang: str) -> str:
    """The summary as a person reads it: the shared report words, local time (pure)."""
    from secops.clock import parse_iso
    from secops.reports.i18n import words
    from secops.reports.incident_report import timeline_row

    w = words(lang)
    t = w.table("summary")

    def when(text: str | None) -> str:
        ts = parse_iso(text)
        return local_text(ts, seconds=True) if ts is not None else w.term("common", "unknown")

    due = doc["notice_deadline"]
    lines = [f"# {t['title']} {doc['id']}", "",
             f"- {t['office']}: {cfg.office.name} ({cfg.office.code})",
             f"- {t['kind']}: {w.event(doc['kind'])}",
             f"- {t['severity']}: {w.severity(doc['severity'])}",
             f"- {t['state']}: {w.state(doc['state'])}",
             f"- {t['opened']}: {when(doc['opened'])}",
             f"- {t['playbook']}: {w.playbook(doc['playbook'])}",
             f"- {t['deadline']}: " + (when(due["deadline"]) if due else t["no_deadline"]),
             "", f"## {t['timeline']}", ""]
    lines += [f"- {when(r['time'])} — {r['label']}: {r['detail']}"
              for r in (timeline_row(e, w, doc["playbook"], {}) for e in doc["timeline"])] \
        or [f"- {w.term('common', 'none')}"]
    lines += ["", f"## {t['evidence']}", ""]
    lines += [f"- {e['name']} — SHA-256 {e['sha256']}" for e in doc["evidence"]] \
        or [f"- {w.term('common', 'none')}"]
    lines += ["", f"## {t['snapshots']}", ""]
    lines += [f"- {s['target']}: {s['snapshot_id'][:8]} ({s['snapshot_id']})"
              for s in doc["snapshots"]] or [f"- {w.term('common', 'none')}"]
    lines += ["", f"## {t['approvals']}", ""]
    lines += [f"- {w.quoted(a['step'])}: {w.outcome(a['state'])}"
              + (f" ({w.actor(a['by'])})" if a["by"] else "") for a in doc["approvals"]] \
        or [f"- {w.term('common', 'none')}"]
    lines += ["", f"## {t['notices']}", ""]
    lines += [t["notice_line"].format(at=when(n["at"]), to=n["to"], how=n["how"], by=n["by"])
              for n in doc["notices"]] or [f"- {t['no_notice']}"]
    return "\n".join(lines)
