"""The incident's summary (JSON and Markdown) in its folder: what happened, what was done.

The signed, printable report and the evidence bundle for the police are the reports
module's; this summary is what a playbook's ``report`` step and the notify attachment use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secops.config.schema import Config
from secops.files import atomic_write, ensure_private_dir
from secops.playbooks.incidents import IncidentStore

WORDS = {
    "vi": {"title": "Báo cáo sự cố", "office": "Cơ quan", "kind": "Loại sự kiện",
           "severity": "Mức độ", "state": "Trạng thái", "opened": "Mở lúc",
           "playbook": "Kịch bản xử lý", "timeline": "Diễn biến", "evidence": "Chứng cứ",
           "snapshots": "Bản sao lưu được giữ (trước sự cố)", "none": "(không có)",
           "approvals": "Phê duyệt"},
    "en": {"title": "Incident report", "office": "Office", "kind": "Event kind",
           "severity": "Severity", "state": "State", "opened": "Opened",
           "playbook": "Playbook", "timeline": "Timeline", "evidence": "Evidence",
           "snapshots": "Pinned pre-incident snapshots", "none": "(none)",
           "approvals": "Approvals"},
}


def summary(store: IncidentStore, incident_id: str) -> dict[str, Any]:
    inc = store.get(incident_id)
    return {**inc.summary(), "event": inc.event, "acked_by": inc.acked_by,
            "timeline": store.timeline(incident_id), "evidence": store.evidence(incident_id),
            "snapshots": store.snapshots(incident_id),
            "approvals": store.approvals(incident_id)}


def write_summary(cfg: Config, store: IncidentStore, incident_id: str, lang: str) -> Path:
    doc = summary(store, incident_id)
    w = WORDS["en" if lang == "en" else "vi"]
    folder = store.folder(incident_id)
    ensure_private_dir(folder)
    lines = [f"# {w['title']} {incident_id}", "",
             f"- {w['office']}: {cfg.office.name} ({cfg.office.code})",
             f"- {w['kind']}: {doc['kind']}", f"- {w['severity']}: {doc['severity']}",
             f"- {w['state']}: {doc['state']}", f"- {w['opened']}: {doc['opened']}",
             f"- {w['playbook']}: {doc['playbook']}", "", f"## {w['timeline']}", ""]
    lines += [f"- {t['time']} {t['what']}" + (f" {t.get('step')}" if t.get("step") else "")
              for t in doc["timeline"]] or [w["none"]]
    lines += ["", f"## {w['evidence']}", ""]
    lines += [f"- {e['name']} sha256 {e['sha256']}" for e in doc["evidence"]] or [w["none"]]
    lines += ["", f"## {w['snapshots']}", ""]
    lines += [f"- {s['target']}: {s['snapshot_id']}" for s in doc["snapshots"]] or [w["none"]]
    lines += ["", f"## {w['approvals']}", ""]
    lines += [f"- {a['step']}: {a['state']}" + (f" ({a['by']})" if a["by"] else "")
              for a in doc["approvals"]] or [w["none"]]
    atomic_write(folder / "incident.json", (json.dumps(doc, ensure_ascii=False, indent=1,
                                                       default=str) + "\n").encode(), 0o600)
    path = folder / "incident.md"
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), 0o600)
    return path
