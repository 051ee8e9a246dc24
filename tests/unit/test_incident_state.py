"""The incident report against the state it came from (issue 13): every snapshot id it names
is the one the snapshot has now; a waiting approval is waiting; a restore from the command
line is the incident's restore; the steps stay in 4.1; a notice can be recorded for any
incident; one personal-data judgement in both languages; the office's contact from the
example configs; times in local time with the zone (ids by the local date, messages too);
the law, form and deadline from the law data; containment measured from the first evidence
to the freeze; incident.md in the shared words; ids that never wrap; the PDF's metadata;
the audit excerpt that keeps the incident's first records."""

from __future__ import annotations

import json
import re
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from audit_start import started_audit_log
from test_incident_report import VOTERS, backdate, make_config
from test_weekly_report import saigon_time  # noqa: F401 - the autouse TZ fixture

from secops.audit import log as audit_log
from secops.audit import record as audit_record
from secops.audit.log import AuditLog, ensure_keys
from secops.backup import lineage
from secops.config.schema import Config
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir
from secops.playbooks import incidents as incidents_mod
from secops.playbooks.engine import Context
from secops.playbooks.incidents import IncidentStore
from secops.playbooks.loader import load_file
from secops.playbooks.summary import summary, write_summary
from secops.reports import incident_report as ir
from secops.reports.excerpt import audit_excerpt
from secops.reports.i18n import words
from secops.restore import history

REPO = Path(__file__).resolve().parents[2]
S0, S1, S2, S3 = ("0a" * 32), ("1b" * 32), ("2c" * 32), ("3d" * 32)
SAFETY = "5e" * 32
T0 = 1779414429.0                      # 2026-05-22T01:47:09Z
T0_ISO = "2026-05-22T01:47:09Z"
HEX8 = re.compile(r"\b[0-9a-f]{8,64}\b")


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def ransomware_event(cfg: Config, *, first_seen: float = T0, at: float = T0,
                     names: tuple[str, ...] = ("danh-sach-cu-tri/thon-1.csv",),
                     freeze_id: int | None = None) -> dict[str, Any]:
    data = Path(cfg.paths.watch[0])
    details: dict[str, Any] = {"score": 9.5, "first_seen": iso(first_seen),
                               "paths": [str(data / n) for n in names]}
    if freeze_id is not None:
        details["freeze_id"] = freeze_id
    return {"kind": "ransomware.suspected", "time": iso(at), "source": "integrity",
            "severity": "critical", "details": details}


def open_incident(cfg: Config, event: dict[str, Any], opened: float,
                  playbook: str = "ransomware-suspected") -> tuple[IncidentStore, str]:
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)
    inc, _ = store.open_or_join(playbook, event, "critical")
    backdate(store, inc.id, opened)
    return store, inc.id


def add(store: IncidentStore, incident: str, when: float, what: str, data: dict[str, Any]
        ) -> None:
    """A timeline entry at a chosen time."""
    with store._db:
        store._add(incident, when, what, data)


def office_with_audit(tmp_path: Path, **office: Any) -> Config:
    cfg = make_config(tmp_path, **office)
    state = Path(cfg.paths.state_dir)
    ensure_keys(state)
    started_audit_log(state, "tan-ky").record("audit.genesis", "secops", {"office": "tan-ky"})
    (Path(cfg.paths.watch[0]) / "danh-sach-cu-tri" / "thon-1.csv").write_text(
        VOTERS, encoding="utf-8")
    return cfg


AuditAt = Callable[[Config, float, str, dict[str, Any], str], None]


@pytest.fixture
def audit_clock(monkeypatch: pytest.MonkeyPatch) -> dict[str, float | None]:
    """The audit log's clock: None, the wall clock; else that time."""
    now: dict[str, float | None] = {"t": None}
    real = audit_log.iso_utc_now
    monkeypatch.setattr(audit_log, "iso_utc_now",
                        lambda: real() if now["t"] is None else iso(float(now["t"])))
    return now


@pytest.fixture
def audit_at(audit_clock: dict[str, float | None]) -> AuditAt:
    """Write an audit record as if at ``when``."""
    def write(cfg: Config, when: float, kind: str, data: dict[str, Any], actor: str) -> None:
        audit_clock["t"] = when
        try:
            audit_record(cfg.paths.state_dir, cfg.office.code, kind, data, actor=actor)
        finally:
            audit_clock["t"] = None

    return write


def names_of(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, default=str)


# -- 1. snapshot ids: the ones the snapshots have now ------------------------------------------

def test_every_snapshot_id_the_report_names_is_the_one_it_has_now(tmp_path: Path,
                                                                  audit_at: AuditAt) -> None:
    """freeze pin (S0 -> S1), playbook pin (S1 -> S2, recorded), close (S2 -> S3): the
    report, the timeline and ``incident show`` name S3, never S0, S1 or S2."""
    cfg = office_with_audit(tmp_path)
    db = Path(cfg.paths.state_dir) / "state.db"
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 5)
    lineage.record(db, "local", S0, S1)
    store.add_snapshot(incident, "local", S2, True)
    lineage.record(db, "local", S1, S2)
    add(store, incident, T0 + 20, "step", {
        "playbook": "ransomware-suspected", "step": "pin", "type": "action", "ok": True,
        "error": None, "action": "snapshot", "outputs": {
            "pinned": {"local": {"id": S2, "short_id": S2[:8], "tagged": True,
                                 "id_before_tagging": S1}},
            "snapshots": {"local": S1}}})
    history.record(db, {"time": iso(T0 - 600), "target": "local", "snapshot_id": S0,
                        "ok": True, "files_checked": 10, "bytes": 100, "rto_s": 1.0,
                        "rpo_s": 60.0, "report": "/x.json"})
    audit_at(cfg, T0 + 30, "restore.completed", {
        "snapshot_id": S2, "target": "local", "to": "/", "in_place": True,
        "safety_snapshot": SAFETY, "files_checked": 1, "mismatched": [], "missing": []},
        "cli:root")
    lineage.record(db, "local", S2, S3)          # incident close: pinned removed
    try:
        for lang in ("vi", "en"):
            doc = ir.build(cfg, store, incident, lang, now=T0 + 3600)
            shown = names_of(doc) + ir.render_md(doc, lang) + ir.render_html(doc, lang)
            named = set(HEX8.findall(shown))
            for gone in (S0, S1, S2):
                assert not {n for n in named if gone.startswith(n)}, (lang, gone[:8])
            assert S3[:8] in shown and doc["snapshots"][0]["snapshot_id"] == S3
            assert doc["recovery"]["restores"][0]["snapshot"] == S3
            assert doc["recovery"]["drills"][0]["snapshot_id"] == S3
        shown = names_of(summary(store, incident))
        assert S3 in shown and not any(s in shown for s in (S0, S1, S2))
    finally:
        store.close()


# -- 2. a waiting step is waiting; the CLI restore; 4.1 keeps the steps ---------------------------

def test_the_playbook_finished_entry_of_a_stopped_run_says_waiting(tmp_path: Path) -> None:
    """run_playbook as the daemon runs it, stopped during the wait: playbook.finished is
    not "finished with failures" (timeline, audit log, report)."""
    import threading

    import msgspec

    from secops.playbooks.dispatch import run_playbook

    cfg = office_with_audit(tmp_path)
    shipped = load_file(REPO / "playbooks" / "ransomware-suspected.yaml")
    pb = msgspec.structs.replace(shipped, steps=[shipped.step("approve-restore")])
    stop = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        box["out"] = run_playbook(cfg, pb, ransomware_event(cfg), dry_run=False,
                                  log=lambda level, msg: None, stop=stop)

    th = threading.Thread(target=run)
    th.start()
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", "tan-ky")
    try:
        deadline = time.monotonic() + 20
        while not store.all() or \
                store.approval(store.all()[0].id, "approve-restore") != "waiting":
            assert time.monotonic() < deadline, "the run never reached its approval"
            time.sleep(0.02)
        stop.set()
        th.join(10)
        incident = box["out"][0].id
        done = next(t for t in store.timeline(incident) if t["what"] == "playbook.finished")
        assert done["ok"] is True and done["waiting"] == ["approve-restore"]
        assert done["stopped"] is True
        acts = ir.incident_acts(Path(cfg.paths.state_dir), incident)
        audited = next(a for a in acts if a["kind"] == "playbook.finished")["data"]
        assert audited["failed"] == [] and audited["waiting"] == ["approve-restore"]
        assert not [a for a in acts if a["kind"] == "playbook.approval.decided"]
        for lang in ("vi", "en"):
            w = words(lang)
            doc = ir.build(cfg, store, incident, lang, now=time.time())
            row = next(r for r in doc["timeline"] if r["what"] == "playbook.finished")
            assert w.outcome("finished_bad") not in row["detail"]
            assert w.outcome("stopped_waiting").split("(")[0] in row["detail"]
            step = next(r for r in doc["timeline"] if r["what"] == "step")
            assert w.outcome("waiting") in step["detail"]
    finally:
        stop.set()
        store.close()


def test_an_in_place_restore_from_the_command_line_is_the_incidents_restore(
        tmp_path: Path, audit_at: AuditAt) -> None:
    cfg = office_with_audit(tmp_path)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    audit_at(cfg, T0 + 300, "restore.completed", {
        "snapshot_id": S1, "target": "local", "to": "/", "in_place": True,
        "safety_snapshot": SAFETY, "files_checked": 3, "mismatched": [], "missing": []},
        "cli:root")
    audit_at(cfg, T0 - 7200, "restore.completed", {   # before the incident: not its restore
        "snapshot_id": S0, "target": "local", "to": "/", "in_place": True,
        "safety_snapshot": SAFETY, "files_checked": 9, "mismatched": [], "missing": []},
        "cli:root")
    try:
        for lang in ("vi", "en"):
            w = words(lang).table("incident")
            doc = ir.build(cfg, store, incident, lang, now=T0 + 3600)
            restores = doc["recovery"]["restores"]
            assert [(r["files_checked"], r["safety_snapshot"], r["in_place"]) for r in restores] \
                == [(3, SAFETY, True)]
            md = ir.render_md(doc, lang)
            section = md[md.index(f"8.1. {w['restores']}"):md.index(f"8.2. {w['drills']}")]
            assert SAFETY[:8] in section and "| 3 |" in section
            assert any(t["record"] == "restore.completed" for t in doc["measures"]["taken"])
    finally:
        store.close()


def test_the_steps_stay_in_4_1_when_only_an_ack_names_the_incident(tmp_path: Path) -> None:
    cfg = office_with_audit(tmp_path)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    for n, step in enumerate(("freeze", "pin", "evidence")):
        add(store, incident, T0 + 10 + n, "step", {
            "playbook": "ransomware-suspected", "step": step, "type": "action", "ok": True,
            "error": None, "outputs": {}})
    audit_record(cfg.paths.state_dir, "tan-ky", "incident.acknowledged",
                 {"incident": incident}, actor="cli:root")
    try:
        doc = ir.build(cfg, store, incident, "vi", now=T0 + 3600)
        taken = doc["measures"]["taken"]
        assert [t["step"] for t in taken if t["record"] is None] == \
            ["freeze", "pin", "evidence"]
        assert [t["record"] for t in taken if t["record"]] == ["incident.acknowledged"]
    finally:
        store.close()


# -- 3. the notice to the authorities, for any incident ------------------------------------------

def test_a_notice_recorded_for_a_ransomware_incident_shows_who_when_to_whom_how(
        tmp_path: Path) -> None:
    cfg = office_with_audit(tmp_path)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    sent = T0 + 5 * 3600
    store.record_notice(incident, at=sent, to="Công an xã Tân Kỳ", how="công văn số 12/UBND",
                        by="Nguyễn Văn An", actor="cli:root")
    try:
        shown = summary(store, incident)
        assert shown["notices"][0]["at"] == iso(sent)
        for lang in ("vi", "en"):
            doc = ir.build(cfg, store, incident, lang, now=T0 + 80 * 3600)
            assert doc["deadline"]["status"] == "notified"
            md = ir.render_md(doc, lang)
            for text in ("Công an xã Tân Kỳ", "công văn số 12/UBND", "Nguyễn Văn An",
                         ir.local(iso(sent)).removesuffix(" (UTC+07:00)")):
                assert text in md, (lang, text)
            assert words(lang).actor("cli:root") in md
    finally:
        store.close()


# -- 4. personal data: the office's setting, the same judgement in both languages -----------------

@pytest.mark.parametrize(("declared", "judgement"), [
    (["bau-cu/danh-sach-cu-tri", "bau-cu/to-khai"], "personal"),
    (None, "undetermined"),
    (["bau-cu/danh-sach-cu-tri"], "none"),
])
def test_the_personal_data_judgement_is_the_same_in_both_languages(
        tmp_path: Path, declared: list[str] | None, judgement: str) -> None:
    (tmp_path / "bau-cu" / "to-khai").mkdir(parents=True)
    extra = {} if declared is None else {"personal_data": declared}
    cfg = office_with_audit(tmp_path, **extra)
    event = ransomware_event(cfg, names=("to-khai/to-khai-00004.jpg",))
    store, incident = open_incident(cfg, event, T0 + 2)
    try:
        docs = {lang: ir.build(cfg, store, incident, lang, now=T0 + 3600)
                for lang in ("vi", "en")}
        said = {lang: d["breach"]["personal_data"]["judgement"] for lang, d in docs.items()}
        assert said == {"vi": judgement, "en": judgement}
        for lang, doc in docs.items():
            assert words(lang).table("incident")[f"pd_{judgement}"] in ir.render_md(doc, lang)
    finally:
        store.close()


# -- 5. the office's address and data-protection contact -----------------------------------------

@pytest.mark.parametrize("name", ["secops.example.toml", "demo.toml"])
def test_the_shipped_configs_declare_the_contact_and_the_report_shows_it(
        tmp_path: Path, name: str) -> None:
    office = tomllib.loads((REPO / "configs" / name).read_text(encoding="utf-8"))["office"]
    for key in ("place", "address", "contact_name", "contact_title", "contact_phone",
                "contact_email", "personal_data"):
        assert office.get(key), (name, key)
    values = {k: office[k] for k in ("place", "address", "contact_name", "contact_title",
                                     "contact_phone", "contact_email")}
    cfg = office_with_audit(tmp_path, **values)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    try:
        md = ir.render_md(ir.build(cfg, store, incident, "vi", now=T0 + 3600), "vi")
        contact = md[md.index("## 2."):md.index("## 3.")]
        assert words("vi").term("common", "not_declared") not in contact
        for key in ("contact_name", "contact_title", "contact_phone", "contact_email"):
            assert office[key].replace("_", "\\_") in contact, key
        assert office["address"] in md
        assert md.count(f"{office['place']}, ngày ") == 1
    finally:
        store.close()


# -- 12. times: local for people, UTC in JSON ----------------------------------------------------

def test_incident_ids_carry_the_local_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    evening_utc = 1773513000.0          # 2026-03-14T18:30:00Z = 15/03/2026 01:30 in Viet Nam
    monkeypatch.setattr(incidents_mod, "time", SimpleNamespace(time=lambda: evening_utc))
    cfg = office_with_audit(tmp_path)
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", "tan-ky")
    try:
        inc, _ = store.open_or_join("ransomware-suspected", ransomware_event(cfg), "critical")
        assert inc.id == "INC-tan-ky-20260315-001"
        assert inc.summary()["opened"] == "2026-03-14T18:30:00Z"    # JSON stays UTC
    finally:
        store.close()


def test_messages_carry_local_times_with_the_zone(tmp_path: Path) -> None:
    from secops.config.loader import parse_config
    from secops.playbooks.notify import Outbox, local_times

    assert local_times("lúc 2026-03-15T02:30:00Z.") == "lúc 15/03/2026 09:30:00 (UTC+07:00)."
    raw = {"office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky"},
           "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(tmp_path / "d")]},
           "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "r")}]},
           "notify": {"drop_dir": str(tmp_path / "drop"), "recipients": {"police": ["drop"]}}}
    cfg = parse_config(raw, tmp_path / "secops.toml")
    (msg,) = Outbox(cfg).enqueue(to="police", subject="[secops] lúc 2026-03-15T02:30:00Z",
                                 body="Phát hiện lúc 2026-03-15T02:30:00Z.")
    for text in (msg.subject, msg.body):
        assert "15/03/2026 09:30:00 (UTC+07:00)" in text and "T02:30:00Z" not in text
    pb = load_file(REPO / "playbooks" / "personal-data-breach.yaml")
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", "tan-ky")
    try:
        event = {"kind": "integrity.unauthorized_change", "time": "2026-03-15T02:30:00Z",
                 "source": "integrity", "severity": "high", "details": {"paths": []}}
        inc, _ = store.open_or_join(pb.id, event, "critical")
        backdate(store, inc.id, 1773541800.0 + 5)
        values = Context(cfg, pb, event, incident=store.get(inc.id), store=store).values()
        # Law 91/2025/QH15 counts from the detection: 72 h after 09:30 on 15/03
        assert values["incident"]["deadline_72h"] == "18/03/2026 09:30 (UTC+07:00)"
        assert "91/2025/QH15" in values["incident"]["notice_basis"]
    finally:
        store.close()


# -- the law: by the incident's day, from the data ------------------------------------------------

LAWS = {
    # Decree 13/2023/NĐ-CP: 72 hours after the breach occurred (the first evidence)
    "decree-13": (1766187000.0, 1766187000.0 + 7200, "Mẫu số 03", "occurrence",
                  "72 giờ kể từ khi xảy ra vi phạm"),
    # Law 91/2025/QH15: 72 hours of detecting it
    "law-91": (T0 - 7200, T0, "Mẫu số 08", "detection", "72 giờ kể từ khi phát hiện vi phạm"),
}


@pytest.mark.parametrize("law", sorted(LAWS))
def test_the_report_follows_the_law_of_the_incidents_day(tmp_path: Path, law: str) -> None:
    first_seen, detected, form, clock, label = LAWS[law]
    since = first_seen if clock == "occurrence" else detected
    cfg = office_with_audit(tmp_path)
    event = ransomware_event(cfg, first_seen=first_seen, at=detected)
    store, incident = open_incident(cfg, event, detected + 3)
    try:
        doc = ir.build(cfg, store, incident, "vi", now=detected + 3600)
        assert doc["deadline"]["deadline"] == iso(since + 72 * 3600)
        md = ir.render_md(doc, "vi")
        assert form in md and label in md
        assert doc["law"]["follows"] in md
        unverified = words("vi").term("law", "unverified_note")
        assert (unverified in md) == (not doc["law"]["verified"])
    finally:
        store.close()


# -- containment: from the first evidence to the freeze ------------------------------------------

def test_time_to_containment_runs_from_the_first_evidence_to_the_freeze(
        tmp_path: Path, audit_at: AuditAt) -> None:
    cfg = office_with_audit(tmp_path)
    event = ransomware_event(cfg, first_seen=T0, at=T0 + 3, freeze_id=7)
    audit_at(cfg, T0 + 2, "integrity.frozen", {"severity": "critical", "details": {
        "freeze_id": 7, "already": False, "paths_frozen": 40,
        "processes": [{"pid": 4242, "stopped": True}]}}, "integrity")
    store, incident = open_incident(cfg, event, T0 + 4)
    add(store, incident, T0 + 40, "state", {"from": "open", "to": "contained",
                                             "by": "playbook:ransomware-suspected/freeze"})
    try:
        doc = ir.build(cfg, store, incident, "en", now=T0 + 3600)
        assert doc["containment"]["seconds_to_contain"] == pytest.approx(2, abs=1)
        assert doc["containment"]["frozen_at"] == iso(T0 + 2)
        assert any(r["what"] == "integrity.frozen" for r in doc["timeline"])
    finally:
        store.close()


# -- incident.md: the shared words, local time ---------------------------------------------------

def test_incident_md_speaks_the_report_words_in_local_time(tmp_path: Path) -> None:
    cfg = office_with_audit(tmp_path)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    store.advance(incident, "contained", "playbook:ransomware-suspected/freeze")
    try:
        md = write_summary(cfg, store, incident, "vi").read_text(encoding="utf-8")
        vi = words("vi")
        assert vi.event("ransomware.suspected") in md and vi.state("contained") in md
        assert vi.severity("critical") in md and "(UTC+07:00)" in md
        for code in ("ransomware.suspected", "incident.opened", " contained", "critical",
                     "T01:47", "cli:", "playbook:"):
            assert code not in md, code
    finally:
        store.close()


# -- layout ----------------------------------------------------------------------------------

def test_ids_never_wrap_the_date_line_names_the_place_and_the_key_its_file(
        tmp_path: Path) -> None:
    cfg = office_with_audit(tmp_path, place="Tân Kỳ")
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    audit = {"start_seq": 1, "end_seq": 9, "records": 9, "checkpoint_seqs": [3, 3, 9, 9],
             "key_id": "47bcb1862b7651b1", "root_id": "05d433c5c71d72b4", "ok": True,
             "problem": None, "entries": []}
    try:
        doc = ir.build(cfg, store, incident, "vi", now=T0 + 3600, audit=audit)
        html = ir.render_html(doc, "vi")
        body = html[html.index("<body>"):]
        text = re.sub(r"<[^>]+>", "", body)
        assert text.count(incident) == body.count(f'<span class="nb">{incident}</span>') > 0
        assert "Tân Kỳ, ngày 22 tháng 5 năm 2026" in html
        md = ir.render_md(doc, "vi")
        assert "3, 9" in md and "3, 3" not in md
        assert "47bcb1862b7651b1: tệp office-ed25519.pub" in md   # export-public's id
        assert "05d433c5c71d72b4: tệp audit-root.pub" in md
        unplaced = office_with_audit(tmp_path / "other")
        store2, other = open_incident(unplaced, ransomware_event(unplaced), T0 + 2)
        try:
            page = ir.render_md(ir.build(unplaced, store2, other, "vi", now=T0), "vi")
            # no [office] place: derived from the office's name, as on every report
            assert "UBND xã Tân Kỳ, ngày" not in page and "Tân Kỳ, ngày 22 tháng 5" in page
        finally:
            store2.close()
    finally:
        store.close()


def test_the_pdf_carries_title_author_and_creation_date(
        tmp_path: Path, require_binary: Callable[[str], str]) -> None:
    from secops.reports.incident_render import pdf_meta
    from secops.reports.pdf import render_pdf

    pdfinfo = require_binary("pdfinfo")
    cfg = office_with_audit(tmp_path)
    store, incident = open_incident(cfg, ransomware_event(cfg), T0 + 2)
    try:
        doc = ir.build(cfg, store, incident, "vi", now=T0 + 3600)
        pdf = tmp_path / "r.pdf"
        pdf.write_bytes(render_pdf(ir.render_html(doc, "vi"), pdf_meta(doc, "vi")))
        info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, text=True, check=True,
                              timeout=60).stdout
        assert re.search(rf"Title:\s+.*{incident}", info), info
        assert re.search(r"Author:\s+UBND xã Tân Kỳ", info), info
        assert re.search(r"CreationDate:\s+\S.*2026", info), info
    finally:
        store.close()


# -- the audit excerpt keeps the incident's first records -----------------------------------------

def test_the_excerpt_starts_before_the_incident_even_within_one_second(
        tmp_path: Path, audit_clock: dict[str, float | None]) -> None:
    """A checkpoint signed in the same second as the incident opened, but after its first
    records, must not become the excerpt's start (audit times are whole seconds)."""
    state = tmp_path / "state"
    sd = StateDir(state)
    ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
    ensure_keys(state)
    log = AuditLog(state, "tan-ky")
    audit_clock["t"] = T0 - 60
    log.record("audit.genesis", "secops", {"office": "tan-ky"})
    log.checkpoint()
    audit_clock["t"] = T0
    log.record("ransomware.suspected", "integrity", {"severity": "critical"})
    log.record("incident.opened", "playbook:x", {"incident": "INC-tan-ky-20260522-001"})
    log.checkpoint()                       # in the same second, after the opening
    log.record("restore.completed", "cli:root", {"target": "local", "in_place": True})
    ex = audit_excerpt(state, "tan-ky", "INC-tan-ky-20260522-001", T0 + 0.5, T0 + 1)
    kinds = [json.loads(line)["kind"] for line in ex.lines]
    assert kinds[:3] == ["audit.genesis", "ransomware.suspected", "incident.opened"], kinds
    assert "restore.completed" in kinds
