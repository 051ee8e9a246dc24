"""The incident report checked against the state it came from, on a real office (restic,
gpg, the real CLI in Viet Nam's time zone), after the demo's sequence: the monitor's freeze
pins the pre-attack snapshot (``restic tag``: a new id), the playbook pins it again (another
id), the officer restores the damaged voter list in place from the command line, records the
notice to the commune police, and closes the incident (unpinned: a third id). Every
snapshot id the report, ``incident show`` and the timeline name is in ``snapshots --json``
and restores; §8.1 counts the restore; the audit excerpt is every record between its ends;
the notice shows who, when, to whom and how; people read local time, JSON keeps UTC."""

from __future__ import annotations

import json
import os
import re
import tarfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from integration.office import QUIET_SCHEDULE, Office, Result, target_toml
from secops.config.loader import load_config
from secops.fim import contain

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

ZONE = "Asia/Ho_Chi_Minh"
TZ = {"TZ": ZONE}
PIN_AND_REPORT = """\
id: pin-and-report
version: 1
name: "Ghim bản sao lưu và lập báo cáo"
severity: critical
trigger: {event: ransomware.suspected}
steps:
  - id: pin
    action: snapshot
    with: {pin_pre_incident: true}
    on_success: report
  - id: report
    action: report
"""
ID_KEYS = ("id", "snapshot_id", "snapshot", "safety_snapshot")
SHORT = re.compile(r"(?<![0-9a-fA-F-])[0-9a-f]{8}(?![0-9a-fA-F])")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def named_ids(doc: Any, found: set[str] | None = None) -> set[str]:
    """Every value under a snapshot-id key, anywhere in a JSON document."""
    found = set() if found is None else found
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ID_KEYS and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{8,64}", v):
                found.add(v)
            else:
                named_ids(v, found)
    elif isinstance(doc, list):
        for v in doc:
            named_ids(v, found)
    return found


def unpack(bundle: str, into: Path) -> Path:
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    return next(into.iterdir())


def test_every_id_count_and_time_the_report_states_matches_the_state(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "pin-and-report.yaml").write_text(PIN_AND_REPORT, encoding="utf-8")
    office = Office(tmp_path / "office", [target_toml("local", str(tmp_path / "repo"))],
                    tail=QUIET_SCHEDULE + f'\n[playbooks]\ndir = "{playbooks}"\n').write()

    def run(*args: str) -> Result:
        return office.run(*args, env=TZ)

    assert run("init").code == 0
    assert run("backup", "now").code == 0
    assert run("drill").code == 0                       # names the snapshot the pins rewrite
    time.sleep(1.1)
    cfg = load_config(office.config)
    before = time.time()
    # the monitor's freeze pins the last snapshot before the attack (restic tag: a new id)
    frozen = contain.pin_pre_attack(cfg, before, "freeze-1", contain.finished_before(cfg, before))
    assert frozen["local"]["tagged"], frozen
    voters = sorted((office.data / "danh-sach-cu-tri").glob("*.csv"))[0]
    scan = sorted((office.data / "phieu-scan").glob("*.jpg"))[0]
    original = voters.read_bytes()
    voters.write_bytes(os.urandom(len(original)))      # "encrypted" by the attacker
    detected = time.time()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "kind": "ransomware.suspected", "time": iso(detected), "source": "integrity",
        "severity": "critical", "details": {"score": 9.5, "first_seen": iso(before),
                                            "paths": [str(voters), str(scan)]}},
        ensure_ascii=False), encoding="utf-8")
    opened = run("playbook", "test", "pin-and-report", "--event", str(event), "--json")
    assert opened.code == 0, opened.err
    incident = opened.json()["incident"]
    local_days = {datetime.fromtimestamp(t, ZoneInfo(ZONE)).strftime("%Y%m%d")
                  for t in (detected, time.time())}
    assert incident.split("-")[-2] in local_days        # the local date, not the UTC one

    pinned = run("incident", "show", incident, "--json").json()["snapshots"][0]
    restored = run("restore", pinned["snapshot_id"][:8], "--target", "local", "--in-place",
                   "--include", str(voters), "--json")
    assert restored.code == 0, restored.err
    safety = restored.json()["safety_snapshot"]
    assert voters.read_bytes() == original

    sent = time.time() + 61      # the minute after now: never before the incident began
    at_local = datetime.fromtimestamp(sent, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M")
    recorded = run("incident", "notify-record", incident, "--to", "Công an xã Tân Kỳ",
                   "--how", "công văn số 12/UBND", "--at", at_local, "--by", "Nguyễn Văn An",
                   "--json")
    assert recorded.code == 0, recorded.err
    expected_at = iso(datetime.strptime(at_local, "%Y-%m-%d %H:%M")
                      .replace(tzinfo=ZoneInfo(ZONE)).timestamp())
    assert recorded.json()["at"] == expected_at         # typed in local time, kept in UTC
    closed = run("incident", "close", incident)
    assert closed.code == 0, closed.err

    docs, pages = {}, {}
    for lang in ("vi", "en"):
        made = run("report", "incident", incident, "--lang", lang, "--json")
        assert made.code == 0, made.err
        top = unpack(made.json()["bundle"], tmp_path / f"bundle-{lang}")
        docs[lang] = json.loads((top / "report.json").read_text(encoding="utf-8"))
        pages[lang] = (top / "report.md").read_text(encoding="utf-8")
    shown = run("incident", "show", incident, "--json").json()
    snaps = run("snapshots", "--json").json()
    existing = {s["id"] for s in snaps if s["target"] == "local"}

    # 1. every snapshot id named exists now, and the pinned one restores
    for where, doc in (*docs.items(), ("incident show", shown)):
        for sid in named_ids(doc):
            assert any(e.startswith(sid) for e in existing), (where, sid, sorted(existing))
    for lang, page in pages.items():
        bundle_name = docs[lang]["signature"]["bundle"] or ""
        for short in SHORT.findall(page):
            if short in incident or short in bundle_name:
                continue                                # the dates in the ids
            assert any(e.startswith(short) for e in existing), (lang, short)
    now_pinned = docs["vi"]["snapshots"][0]["snapshot_id"]
    assert now_pinned != pinned["snapshot_id"]          # closing rewrote it once more
    check = run("restore", now_pinned[:8], "--target", "local", "--to", str(tmp_path / "chk"))
    assert check.code == 0, check.err

    # 2. the command line's restore is the incident's; the steps and acts are in 4.1
    for lang, doc in docs.items():
        restores = doc["recovery"]["restores"]
        assert [(r["in_place"], r["safety_snapshot"][:8], r["ok"]) for r in restores] == \
            [(True, safety[:8], True)], lang
        records = [t["record"] for t in doc["measures"]["taken"]]
        assert "restore.completed" in records and "incident.notice_recorded" in records
        assert [t["step"] for t in doc["measures"]["taken"] if not t["record"]] == \
            ["pin", "report"]

    # the audit excerpt: every record between its ends, as the audit log has them
    top = next((tmp_path / "bundle-vi").iterdir())
    excerpt = (top / "audit" / "audit-excerpt.jsonl").read_bytes().splitlines()
    meta = json.loads((top / "audit" / "excerpt.json").read_text(encoding="utf-8"))
    log = {json.loads(line)["seq"]: line for line in
           (office.state / "audit" / "audit.jsonl").read_bytes().splitlines()}
    assert excerpt == [log[s] for s in range(meta["start_seq"], meta["end_seq"] + 1)]
    kinds = [json.loads(line)["kind"] for line in excerpt]
    for kind in ("incident.opened", "restore.completed", "incident.notice_recorded",
                 "incident.closed", "backup.completed"):
        assert kind in kinds, kind
    assert len(docs["vi"]["audit"]["rows"]) == meta["records"] == len(excerpt)

    # 3. the notice: when, to whom, how, by whom
    for lang, doc in docs.items():
        deadline = doc["deadline"]
        assert deadline["status"] == "notified", lang
        notice = deadline["notices"][0]
        assert (notice["at"], notice["to"], notice["how"], notice["by"]) == \
            (expected_at, "Công an xã Tân Kỳ", "công văn số 12/UBND", "Nguyễn Văn An")
        for text in ("Công an xã Tân Kỳ", "công văn số 12/UBND", "Nguyễn Văn An"):
            assert text in pages[lang]
    assert shown["notices"][0]["at"] == expected_at

    # 4. one judgement on personal data, in both languages
    judged = {lang: (d["breach"]["personal_data"]["judgement"],
                     [f["path"] for f in d["breach"]["personal_data"]["files"]])
              for lang, d in docs.items()}
    assert judged["vi"] == judged["en"] == ("personal", [str(voters)])

    # 12. people read local time with the zone; JSON stays UTC
    for page in pages.values():
        assert "(UTC+07:00)" in page and "(UTC+00:00)" not in page
    human = run("incident", "show", incident)
    assert human.code == 0 and "(UTC+07:00)" in human.out and now_pinned[:8] in human.out
    assert not re.search(r"\d{2}:\d{2}:\d{2}Z", human.out)
    status = run("status")
    assert "(UTC+07:00)" in status.out, status.out
    listed = run("incident", "list", "--json").json()
    assert listed[0]["opened"].endswith("Z")
