"""No code word reaches a reader: the incident report (HTML and Markdown), the weekly report
and the drill report, rendered in both languages from realistic state, carry no dotted event
kind, no bare severity, state, outcome, action or actor code, no ``None``, no ``[freeze]``,
no English status word in Vietnamese and no Vietnamese in English, except in the values
that come from outside (file names, the office, people, a playbook's own prompt text,
system messages), which are taken out before the checks. And the two word files carry the
same keys, and every event kind the code can emit has a name in both."""

from __future__ import annotations

import ast
import html as htmllib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_start import started_audit_log
from test_incident_report import VOTERS, make_config
from test_weekly_report import (
    MONDAY_0700,
    at,
    failed,
    make_cfg,
    ok,
    open_incident,
    saigon_time,  # noqa: F401 - the autouse TZ fixture
    signed,
)
from test_weekly_report import iso as iso_at

from secops.audit import record as audit_record
from secops.audit.log import ensure_keys
from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.errors import OperationalError
from secops.playbooks.catalog import CATALOG
from secops.playbooks.engine import Context, Runner
from secops.playbooks.incidents import IncidentStore
from secops.playbooks.loader import load_file
from secops.reports import drill_report, incident_report, law, weekly
from secops.reports.i18n import term, words
from secops.restore import history

REPO = Path(__file__).resolve().parents[2]
SECOPS = REPO / "secops"
VI_LETTERS = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
VI_RE = re.compile(f"[{VI_LETTERS}{VI_LETTERS.upper()}]")
# words of the codes themselves: what an English status word in a Vietnamese report is
EN_STATUS = ("critical", "high", "medium", "low", "info", "open", "contained", "recovered",
             "closed", "ok", "succeeded", "failed", "failure", "skipped", "waiting", "expired",
             "approved", "rejected", "pending", "overdue", "notified", "snapshot", "freeze",
             "unfreeze", "pin", "notify", "report", "upload", "command", "restore", "drill",
             "evidence", "daemon", "integrity", "playbook", "step", "approval", "none", "null",
             "true", "false", "unknown", "error", "passed", "edited", "truncated", "deleted",
             "rotated", "unsealed", "missing", "unavailable")
EN_RE = re.compile(r"\b(" + "|".join(EN_STATUS) + r")\b", re.IGNORECASE)
FILE_EXT = r"(?:jsonl|json|md|txt|html|pdf|gz|asc|csv|docx|xlsx|sig|log|toml|pub)"
FILE_RE = re.compile(r"[\w./-]*\.(?:" + FILE_EXT + r")\b")
ABS_PATH_RE = re.compile(r"(?<![\w.])/[^\s,;:()“”\"'<>]+")
DOTTED_RE = re.compile(r"\b[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\b")
UNDERSCORE_RE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
ACTOR_RE = re.compile(r"\b(?:cli|playbook|daemon):")
BRACKET_RE = re.compile(r"\[[a-z][\w-]*\]")
PY_RE = re.compile(r"\b(?:None|True|False|null)\b")
UNTRANSLATED = ("chưa có bản dịch", "no translation")


# -- what a reader sees -------------------------------------------------------------------------

def visible(page: str) -> str:
    """The text of an HTML page (or Markdown), one line, entities decoded, no <style>."""
    page = re.sub(r"<style.*?</style>", " ", page, flags=re.DOTALL)
    page = re.sub(r"<title>.*?</title>", " ", page, flags=re.DOTALL)
    text = htmllib.unescape(re.sub(r"<[^>]+>", " ", page))
    text = text.replace("\\", "")                            # Markdown escapes
    return re.sub(r"\s+", " ", text.replace("\xa0", " "))


def scrub(text: str, outside: list[str]) -> str:
    """The text without the values that come from outside (longest first), file paths and
    file names."""
    for value in sorted({v for v in outside if v}, key=len, reverse=True):
        text = text.replace(value, " ⟨⟩ ")
    text = ABS_PATH_RE.sub(" ⟨⟩ ", text)
    return FILE_RE.sub(" ⟨⟩ ", text)


def findings(text: str, lang: str, outside: list[str]) -> list[str]:
    """Every code word left in the text a reader sees, as 'what: the word'."""
    rest = scrub(text, outside)
    found = [f"untranslated: {m}" for m in UNTRANSLATED if m in rest]
    found += [f"dotted kind: {m}" for m in DOTTED_RE.findall(rest)]
    found += [f"bracketed name: {m}" for m in BRACKET_RE.findall(rest)]
    found += [f"actor code: {m}" for m in ACTOR_RE.findall(rest)]
    found += [f"code: {m}" for m in UNDERSCORE_RE.findall(rest)]
    found += [f"python value: {m}" for m in PY_RE.findall(rest)]
    if lang == "vi":
        found += [f"English word: {m}" for m in EN_RE.findall(rest)]
    else:
        found += [f"bare code: {m}" for m in re.findall(r"\b(?:ok|daemon)\b", rest)]
        found += [f"Vietnamese: {m}" for m in _vi_words(rest)]
    return sorted(set(found))


def _vi_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\S+", text) if VI_RE.search(w)]


# -- an incident as the daemon leaves it --------------------------------------------------------

SHA = "9f2c4b7e1d3a5f6081726354a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"
PIN = "4f1c2a9e7b3d5c6a8e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e"
NOTIFY_ERROR = "SMTP 127.0.0.1:25: connection refused"
EXCERPT_PROBLEM = "record 12: mac: the MAC of record 12 does not match"


def stand_ins(store: IncidentStore, incident: str, paths: list[str]) -> dict[str, Any]:
    """The catalog's actions with the outputs the real ones give; notify fails (no SMTP)."""
    def freeze(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        return {"already": True, "frozen_paths": paths, "stopped": [4242]}

    def snapshot(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        store.add_snapshot(incident, "local", PIN, True)
        return {"pinned": {"local": {"id": PIN, "tagged": True}},
                "snapshots": {"local": "b3" + PIN[2:]}, "failed": {}}

    def evidence(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        rows = [{"seq": n, "name": name, "kind": kind, "sha256": SHA, "size": 1000 + n,
                 "collected_at": "2026-05-22T01:48:00Z"}
                for n, (name, kind) in enumerate((("processes.json", "processes"),
                                                  ("users.json", "users"),
                                                  ("files/thon-1.csv", "file")), 1)]
        store.add_evidence(incident, rows)
        return {"items": [r["name"] for r in rows]}

    def notify(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        raise OperationalError(NOTIFY_ERROR)

    def other(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
        return {"report": "incident.md"}

    run = {"freeze": freeze, "snapshot": snapshot, "collect_evidence": evidence,
           "notify": notify}
    return {n: (run.get(n, other), lambda ctx, args, n=n: n) for n in CATALOG}


def ransomware_incident(cfg: Config, store: IncidentStore) -> str:
    """The shipped ransomware playbook run by the real engine: freeze, pin, evidence, a
    notification that fails, the report, then the restore approval left waiting (the
    daemon stopped); a canary event joins; root acknowledges from the command line."""
    data = Path(cfg.paths.watch[0])
    paths = [str(data / "danh-sach-cu-tri" / "thon-1.csv"), str(data / "Biên bản kiểm phiếu.docx")]
    event = {"kind": "ransomware.suspected", "time": "2026-05-22T01:47:09Z",
             "source": "integrity", "severity": "critical",
             "details": {"score": 12.5, "first_seen": "2026-05-22T01:47:02Z", "paths": paths,
                         "processes": [{"pid": 4242, "comm": "python3",
                                        "exe": "/usr/bin/python3.11", "user": "www-data"}]}}
    inc, _ = store.open_or_join("ransomware-suspected", event, "critical")
    playbook = load_file(REPO / "playbooks" / "ransomware-suspected.yaml")
    ctx = Context(cfg, playbook, event, incident=inc, store=store, approval_poll_s=0.02)
    run = threading.Thread(target=Runner(ctx, stand_ins(store, inc.id, paths)).run)
    run.start()
    deadline = time.monotonic() + 20
    while store.approval(inc.id, "approve-restore") != "waiting":
        assert time.monotonic() < deadline, "the run never reached its approval"
        time.sleep(0.02)
    ctx.stop.set()                                   # the daemon stops during the wait
    run.join(10)
    store.open_or_join("ransomware-suspected", {
        "kind": "canary.touched", "time": "2026-05-22T01:47:30Z", "source": "integrity",
        "severity": "critical", "details": {"paths": [str(data / "~secops-canary.docx")]}},
        "critical")
    store.ack(inc.id, "cli:root")
    audit_record(cfg.paths.state_dir, cfg.office.code, "incident.acknowledged",
                 {"incident": inc.id}, actor="cli:root")
    return inc.id


def breach_incident(cfg: Config, store: IncidentStore) -> str:
    """The personal-data-breach playbook's incident: its draft step (no audit record), and
    the shipped 'notified' approval waiting, its prompt the playbook's Vietnamese."""
    voters = str(Path(cfg.paths.watch[0]) / "danh-sach-cu-tri" / "thon-1.csv")
    event = {"kind": "integrity.unauthorized_change", "time": "2026-05-22T01:47:09Z",
             "source": "integrity", "severity": "high",
             "details": {"paths": [voters], "changes": [
                 {"kind": "modified", "path": voters,
                  "diff": "--- trước (before)\n+++ sau (after)\n+4,Người Lạ,x"}]}}
    inc, _ = store.open_or_join("personal-data-breach", event, "critical")
    store.note(inc.id, "step", {"playbook": "personal-data-breach", "step": "draft",
                                "type": "action", "ok": True, "error": None,
                                "outputs": {"report": "incident.md"}})
    store.note(inc.id, "step", {"playbook": "personal-data-breach", "step": "start-clock",
                                "type": "action", "ok": False, "error": None,
                                "outputs": {}})
    store.request_approval(inc.id, "notified", "Đã gửi thông báo vi phạm dữ liệu cá nhân tới "
                           "Cục A05 (Bộ Công an)?", 2880 * 60)
    store.request_approval(inc.id, "custom", "Đã họp Ban chỉ đạo bầu cử xã?", 600)
    store.decide(inc.id, "custom", approve=False, by="cli:chu-tich")
    return inc.id


OFFICE_VALUES = ["UBND xã Tân Kỳ", "tan-ky", "Xã Tân Kỳ, Nghệ An", "Nguyễn Thị Hoà",
                 "Công chức Văn phòng", "0238 3800 000", "Họ và tên, Ngày sinh, Giới tính",
                 socket.gethostname(), "chu-tich", "root", "www-data", "python3", "local"]
PROMPTS = ["Khôi phục các tệp bị hỏng từ bản sao lưu trước sự cố (tiến trình nghi vấn sẽ bị "
           "dừng hẳn)?", "Đã họp Ban chỉ đạo bầu cử xã?"]
STEP_IDS = ["approve-restore", "notified", "custom", "draft", "start-clock", "freeze", "pin",
            "gather", "evidence", "alert", "report"]


def incident_outside(doc: dict[str, Any]) -> list[str]:
    """The report's values from outside: the office, people, files, ids, hashes, system
    messages, and the playbook's own prompt text and step names (in “quotes”)."""
    values = [*OFFICE_VALUES, doc["incident"]["id"], SHA, PIN, PIN[:8], NOTIFY_ERROR,
              EXCERPT_PROBLEM, "--- trước (before)", "+++ sau (after)", "+4,Người Lạ,x",
              "Biên bản kiểm phiếu", "STT", "4242"]
    values += [f"“{p}”" for p in PROMPTS] + [f"“{s}”" for s in STEP_IDS]
    values += [e["name"] for e in doc["evidence"]]
    values += [i.number for i in law.instruments()]   # "356/2025/NĐ-CP": the law's own name
    return values


@pytest.fixture
def incidents(tmp_path: Path) -> Iterator[tuple[Config, IncidentStore, list[str]]]:
    cfg = make_config(tmp_path)
    state = Path(cfg.paths.state_dir)
    ensure_keys(state)
    started_audit_log(state, "tan-ky").record("audit.genesis", "secops", {"office": "tan-ky"})
    (Path(cfg.paths.watch[0]) / "danh-sach-cu-tri" / "thon-1.csv").write_text(
        VOTERS, encoding="utf-8")
    for when, passed in (("2026-05-20T02:00:00Z", True), ("2026-05-21T02:00:00Z", False)):
        history.record(state / "state.db", {
            "time": when, "target": "local", "snapshot_id": PIN, "ok": passed,
            "files_checked": 120, "bytes": 5_000_000, "rto_s": 42.5, "rpo_s": 3600.0,
            "report": "/x.json"})
    store = IncidentStore(state / "state.db", "tan-ky")
    try:
        yield cfg, store, [ransomware_incident(cfg, store), breach_incident(cfg, store)]
    finally:
        store.close()


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_incident_report_has_no_code_words(
        incidents: tuple[Config, IncidentStore, list[str]], lang: str) -> None:
    cfg, store, ids = incidents
    audit = {"start_seq": 1, "end_seq": 40, "records": 40, "checkpoint_seqs": [],
             "key_id": None, "ok": False, "problem": EXCERPT_PROBLEM}
    problems: dict[str, list[str]] = {}
    for incident in ids:
        opened = store.get(incident).opened
        doc = incident_report.build(cfg, store, incident, lang, now=opened + 3600,
                                    audit=audit)
        for form, page in (("html", incident_report.render_html(doc, lang)),
                           ("md", incident_report.render_md(doc, lang))):
            found = findings(visible(page), lang, incident_outside(doc))
            if found:
                problems[f"{incident} {form}"] = found
    assert not problems, problems


# -- a week as the daemon leaves it ---------------------------------------------------------------

@pytest.fixture
def busy_week(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Week 2026-W11 with every integrity kind, other alerts, incidents in every state."""
    cfg = make_cfg(tmp_path)
    state = tmp_path / "state"
    ensure_keys(state)
    started_audit_log(state, "tan-ky").record("audit.genesis", "secops", {"office": "tan-ky"})
    db = StateDB(state / "state.db", office="tan-ky")
    db.ensure_targets(["local", "offsite"])
    for started in (at(9, 8), at(9, 9), at(10, 9), at(12, 9)):
        ok(db, "local", started)
    failed(db, "local", at(13, 10))
    ok(db, "offsite", at(9, 10))
    for n, (kind, severity, source) in enumerate((
            ("integrity.unauthorized_change", "high", "integrity"),
            ("canary.touched", "critical", "integrity"),
            ("ransomware.suspected", "critical", "integrity"),
            ("integrity.frozen", "critical", "integrity"),
            ("integrity.unfrozen", "info", "cli"),
            ("logs.tampered", "high", "daemon"), ("audit.tampered", "critical", "daemon"),
            ("target.unreachable", "high", "daemon"), ("watch.degraded", "medium", "daemon"))):
        db.add_event(iso_at(at(11, 2, n)), kind, source, severity,
                     {"paths": ["/srv/bau-cu/Biên bản kiểm phiếu.docx"], "score": 12.5})
    db.close()
    store = IncidentStore(state / "state.db", "tan-ky")
    for day, playbook, kind, to in ((10, "ransomware-suspected", "ransomware.suspected",
                                     "contained"),
                                    (11, "audit-tampered", "audit.tampered", None),
                                    (12, "backup-failing", "backup.failed", "recovered"),
                                    (13, "protected-file-changed",
                                     "integrity.unauthorized_change", "closed")):
        inc = open_incident(store, monkeypatch, at(day, 9), playbook, kind)
        if to:
            store.advance(inc, to, f"playbook:{playbook}")
    store.close()
    for when, passed, rto in ((at(15, 3), True, 42.5), (at(15, 4), False, 61.0)):
        history.record(state / "state.db", {
            "time": iso_at(when), "target": "local", "snapshot_id": "a1b2c3d4e5f6",
            "ok": passed, "files_checked": 120, "bytes": 5_000_000, "rto_s": rto,
            "rpo_s": 3600.0, "report": "/x.json"})
    return cfg


WEEK_OUTSIDE = ["[secops]",              # the product's tag in the mail subject, as in every mail
                "UBND xã Tân Kỳ", "UBND XÃ TÂN KỲ", "local", "offsite", "2026-W11",
                "Biên bản kiểm phiếu", "a1b2c3d", "weekly-2026-W11.pdf.asc",
                "gpg --verify", "target unreachable", "MAC mismatch at record 12"]


def week_doc(cfg: Config) -> dict[str, Any]:
    """The week's data, plus what a sealed office would show: log files in each state, an
    audit log that does not verify, a journal check that did not run."""
    doc = signed(weekly.build(cfg, "2026-W11", MONDAY_0700))
    doc["audit"].update(ok=False, first_bad_seq=12, problem="mac",
                        detail="MAC mismatch at record 12")
    doc["logs"].update(seal_configured=True, ok=False, files=[
        {"path": "/var/log/auth.log", "status": s} for s in ("ok", "rotated", "edited",
                                                            "truncated", "unsealed")])
    doc["logs"]["journal"] = {"ran": False, "ok": False, "passed": 0, "failed": 0,
                              "unverified": 0, "detail": "journalctl not found", "time": None}
    return doc


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_weekly_report_has_no_code_words(busy_week: Config, lang: str) -> None:
    doc = week_doc(busy_week)
    outside = [*WEEK_OUTSIDE, "journalctl not found"]
    outside += [t["error"] for t in doc["storage"]["targets"] if t.get("error")]
    outside += [i["id"] for i in doc["incidents"]["items"]]
    found = findings(visible(weekly.render_html(doc, lang)), lang, outside)
    subject, body = weekly.mail_text(doc, lang)
    found += findings(visible(subject + "\n" + body), lang, outside)
    assert not found, found


# -- a drill ------------------------------------------------------------------------------------

DRILL: dict[str, Any] = {
    "ok": False, "snapshot_id": "a1b2c3d4e5f60718", "target": "offsite",
    "files_checked": 120, "bytes": 5_000_000,
    "mismatched": ["/srv/bau-cu/thon-2.csv: content differs"], "missing": [],
    "problems": ["0 files verified: none of the 3 file(s) the signed manifest lists for this "
                 "restore is there"],
    "rto_s": 42.5, "rpo_s": 3600.0, "time": "2026-03-15T03:00:00Z",
    "snapshot_time": "2026-03-15T02:00:00Z", "office": "tan-ky",
    "office_name": "UBND xã Tân Kỳ", "manifest_signed_by": "ed25519:3f9a0c1b",
    "report_signed_by": "ed25519:3f9a0c1b",
    "warnings": ["1 file(s) already in the folder were left as they were (not from the "
                 "snapshot, not verified)"]}


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_drill_report_has_no_code_words(lang: str) -> None:
    outside = ["UBND xã Tân Kỳ", "tan-ky", "offsite", "a1b2c3d4e5f60718", "ed25519:3f9a0c1b",
               "content differs", "secops report verify-drill",  # the command, as typed
               *DRILL["problems"], *DRILL["warnings"]]
    found = findings(visible(drill_report.render_html(DRILL, lang)), lang, outside)
    assert not found, found


# -- the guard itself ---------------------------------------------------------------------------

def test_the_guard_finds_what_it_is_for() -> None:
    text = ("Loại sự kiện: ransomware.suspected; Mức độ: critical; contained; freeze [pin]: "
            "FAILED None; cli:root; collect_evidence")
    found = findings(text, "vi", [])
    for word in ("dotted kind: ransomware.suspected", "English word: critical",
                 "English word: contained", "bracketed name: [pin]", "python value: None",
                 "actor code: cli:", "code: collect_evidence"):
        assert word in found, (word, found)
    assert findings("Prompt: Đã gửi?", "en", []) == ["Vietnamese: gửi?", "Vietnamese: Đã"]
    assert findings("Prompt: Đã gửi?", "en", ["Đã gửi?"]) == []
    assert findings("Tệp /srv/bau-cu/a.csv và README.txt; nghiêm trọng", "vi", []) == []


# -- the word files -----------------------------------------------------------------------------

def test_both_languages_have_the_same_words_and_fields() -> None:
    vi, en = words("vi"), words("en")
    assert set(vi.tables) == set(en.tables)
    for name in vi.tables:
        assert set(vi.tables[name]) == set(en.tables[name]), name
        for key, text in vi.tables[name].items():
            other = en.tables[name][key]
            assert type(text) is type(other), (name, key)
            fields = {str(t): set(re.findall(r"\{(\w+)\}", str(t)))
                      for t in (text if isinstance(text, list) else [text])}
            others = {str(t): set(re.findall(r"\{(\w+)\}", str(t)))
                      for t in (other if isinstance(other, list) else [other])}
            assert set().union(*fields.values()) == set().union(*others.values()), (name, key)
    assert len(vi.table("weekly")["rpo_bins"].split("|")) == len(weekly.RPO_BOUNDS) + 1
    assert len(en.table("weekly")["weekdays"].split("|")) == 7


def test_english_has_no_vietnamese_and_vietnamese_has_its_diacritics() -> None:
    for name, table in words("en").tables.items():
        for key, text in table.items():
            for t in text if isinstance(text, list) else [text]:
                assert not VI_RE.search(t), (name, key, t)
    vi = words("vi")
    assert vi.severity("critical") == "nghiêm trọng" and vi.state("contained") == "đã ngăn chặn"
    assert vi.actor("cli:root") == "quản trị viên (root) qua dòng lệnh"
    assert words("en").actor("cli:root") == "administrator (root), command line"


def test_an_unknown_key_is_visible_and_caught() -> None:
    for lang in ("vi", "en"):
        shown = term("severity", "catastrophic", lang)
        assert "catastrophic" in shown
        assert any(m in shown for m in UNTRANSLATED)
        assert findings(shown, lang, []), shown
        assert "ransomware.new_kind" in words(lang).event("ransomware.new_kind")
        assert findings(words(lang).event("ransomware.new_kind"), lang, [])
        assert words(lang).actor("playbook:office-own/step-1")   # an office's own playbook


def test_every_shipped_prompt_has_a_translation_and_is_the_playbook_text() -> None:
    import yaml

    vi, en = words("vi"), words("en")
    for path in sorted((REPO / "playbooks").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert vi.has("playbook", doc["id"]) and en.has("playbook", doc["id"]), doc["id"]
        assert vi.playbook(doc["id"]) == doc["name"]
        for step in doc["steps"]:
            if step.get("prompt"):
                key = f"{doc['id']}/{step['id']}"
                assert vi.term("prompt", key) == step["prompt"], key
                assert en.prompt(doc["id"], step["id"], step["prompt"]) == \
                    en.quoted(en.term("prompt", key))
                assert vi.prompt(doc["id"], step["id"], step["prompt"]) == \
                    vi.quoted(step["prompt"])
            if step.get("action"):
                assert vi.has("action", step["action"]), step["action"]


def emitted_kinds() -> set[str]:
    """Every event kind the code can emit: the literal kinds of add_event(...), alert(...),
    _alert(...), _alert_threadsafe(...), _record(app, ...) and ("alert", kind, ...) queue
    items in secops/, the scheduled-job failure kinds, and the kinds the docs list."""
    calls = {"add_event", "alert", "_alert", "_alert_threadsafe", "_record"}
    dotted = re.compile(r"^[a-z_]+\.[a-z_]+$")
    found: set[str] = set()
    for path in SECOPS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            args: list[ast.expr] = []
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                args = list(node.args) if name in calls else []
            elif isinstance(node, ast.Tuple) and node.elts and \
                    isinstance(node.elts[0], ast.Constant) and node.elts[0].value == "alert":
                args = node.elts[1:2]
            elif isinstance(node, ast.Dict) and node.values and all(
                    isinstance(v, ast.Constant) and isinstance(v.value, str)
                    and v.value.endswith("_failed") for v in node.values):
                args = list(node.values)           # scheduled jobs: check -> *.check_failed
            found |= {a.value for a in args if isinstance(a, ast.Constant)
                      and isinstance(a.value, str) and dotted.match(a.value)}
    found.add("logs.tampered")                     # logs.seal.raise_tampered
    arch = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    alerts = arch[arch.index("- Alerts (the `events` table"):]
    alerts = alerts[:alerts.index("Every event can fire playbooks")]
    design = (REPO.parent / "shared" / "DESIGN.md")
    events = ""
    if design.exists():
        text = design.read_text(encoding="utf-8")
        events = text[text.index("## Events"):][:1200].split("Playbooks trigger")[0]
    for m in re.finditer(r"`([a-z_]+)\.([a-z_|]+)`", alerts + events):
        if m[1] != "details":                      # `details.reason`: a field, not a kind
            found |= {f"{m[1]}.{part}" for part in m[2].split("|")}
    return found


def test_every_event_kind_the_code_can_emit_has_a_name() -> None:
    import yaml

    kinds = emitted_kinds()
    for path in (REPO / "playbooks").glob("*.yaml"):
        trigger = yaml.safe_load(path.read_text(encoding="utf-8"))["trigger"]["event"]
        kinds |= set(trigger if isinstance(trigger, list) else [trigger])
    assert {"ransomware.suspected", "integrity.gate_degraded", "backup.check_failed",
            "maintenance.stopped", "playbook.failed", "watch.degraded"} <= kinds
    for lang in ("vi", "en"):
        missing = sorted(k for k in kinds if not words(lang).has("event", k))
        assert not missing, (lang, missing)


def test_every_state_severity_outcome_and_record_the_engine_writes_has_a_word() -> None:
    from secops.playbooks.model import STATES
    src = (SECOPS / "playbooks" / "incidents.py").read_text(encoding="utf-8")
    records = set(re.findall(r"_add\([^,]+, [^,]+, \"([a-z_.]+)\"", src))
    records |= {"step", "approval.approved", "approval.rejected", "approval.expired",
                "snapshots.unpinned", "playbook.finished"}
    for lang in ("vi", "en"):
        w = words(lang)
        assert all(w.has("state", s) for s in STATES)
        assert all(w.has("severity", s) for s in ("critical", "high", "medium", "low", "info"))
        assert all(w.has("outcome", s) for s in ("ok", "failed", "waiting", "approved",
                                                 "rejected", "expired"))
        assert all(w.has("action", a) for a in CATALOG)
        assert not [r for r in records if not w.has("record", r)], records


def test_the_reports_say_it_in_words(busy_week: Config) -> None:
    """The codes come out as the words for them (and numbers with a decimal comma)."""
    doc = week_doc(busy_week)
    vi = visible(weekly.render_html(doc, "vi"))
    assert "đã ngăn chặn" in vi and "Nghi ngờ mã độc tống tiền" in vi and "nghiêm trọng" in vi
    assert "Nhật ký kiểm toán có dấu hiệu bị sửa" in vi
    en = visible(weekly.render_html(doc, "en"))
    assert "contained" in en and "Suspected ransomware" in en
    page = visible(drill_report.render_html(DRILL, "vi"))
    assert "42,5 giây" in page and "KHÔNG ĐẠT" in page and "Vấn đề khác" in page
    assert "(thông báo gốc của hệ thống)" in page
