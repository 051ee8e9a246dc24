"""The weekly report: weeks in local time, figures from a synthetic state.db written through
the real APIs, both languages, the charts (valid SVG, one bar per day) and the PDF (Vietnamese
diacritics in the text layer, charts drawn on the page). The clock says Monday 16 March 2026,
07:00 in Asia/Ho_Chi_Minh."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from audit_start import started_audit_log

from secops.audit import log as audit_log
from secops.audit.log import ensure_keys
from secops.backup.models import TargetResult
from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.daemon.state import StateDB, record_results
from secops.errors import UsageError
from secops.playbooks import incidents as incidents_module
from secops.playbooks.incidents import IncidentStore
from secops.reports import charts, weekly
from secops.reports.i18n import words
from secops.reports.pdf import render_pdf
from secops.restore import history

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
SVG = "{http://www.w3.org/2000/svg}"
FPR = "8D6C0F3B2A1E4F5C6B7A8D9E0F1A2B3C4D5E6F70"
REQUIRED = {
    "vi": ["Sao lưu theo nơi lưu trữ", "Thay đổi toàn vẹn và phát hiện", "Sự cố và trạng thái",
           "Diễn tập khôi phục", "Kiểm tra nhật ký kiểm toán và nhật ký hệ thống",
           "Dung lượng lưu trữ", "Số lần sao lưu mỗi ngày", "Phân bố RPO", "NGƯỜI LẬP BÁO CÁO",
           "TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "Nơi nhận:", "Chữ ký số",
           "BÁO CÁO TUẦN VỀ AN TOÀN DỮ LIỆU BẦU CỬ", "ỦY BAN NHÂN DÂN XÃ TÂN KỲ",
           "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
           "Số: /BC-UBND", "Tỷ lệ thành công", "RPO lớn nhất",
           "RPO trung vị", "Thời gian khôi phục (RTO)", "Cách tính"],
    "en": ["Backups per target", "Integrity changes and detections",
           "Incidents and their states", "Recovery drills",
           "Audit log and system log verification", "Storage use", "Backups per day",
           "RPO distribution", "PREPARED BY", "ON BEHALF OF THE PEOPLE'S COMMITTEE", "CHAIR",
           "Recipients:", "Digital signature", "WEEKLY ELECTION DATA SECURITY REPORT",
           "SOCIALIST REPUBLIC OF VIET NAM", "Independence - Freedom - Happiness", "Success rate",
           "RPO max", "RPO median", "Time to recover (RTO)", "Method"],
}
# Figures each language must show for the synthetic week below.
FIGURES = {
    "vi": ["Tuần 2026-W11: từ 09/03/2026 đến hết 15/03/2026", "80 %", "100 %", "2 ngày",
           "17 giờ", "30 phút", "42,5 giây", "KHÔNG ĐẠT", "1/2 lần đạt", "đã ngăn chặn",
           "Nghi ngờ mã độc tống tiền", "không lấy được", "Tân Kỳ, ngày 16 tháng 3 năm 2026",
           "3 phát hiện", "ngăn chặn 1 lần, gỡ ngăn chặn 1 lần", "16/03/2026 07:00 (UTC+07:00)"],
    "en": ["Week 2026-W11: from 2026-03-09 to the end of 2026-03-15", "80%", "100%", "2 d",
           "17 h", "30 min", "42.5 s", "FAILED", "1/2 passed", "contained",
           "Suspected ransomware", "unavailable:", "Tan Ky, 16 March 2026", "3 detected (",
           "contained 1 time(s), containment lifted 1 time(s)", "2026-03-16 07:00 (UTC+07:00)"],
}


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


MONDAY_0700 = FakeClock(datetime(2026, 3, 16, 7, 0, tzinfo=HCM))


def at(day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of March ``day`` 2026, local (Asia/Ho_Chi_Minh) time."""
    return datetime(2026, 3, day, hour, minute, tzinfo=HCM).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(autouse=True)
def saigon_time() -> Iterator[None]:
    """The server's zone is Asia/Ho_Chi_Minh (UTC+7), as in production."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Ho_Chi_Minh"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def make_cfg(tmp_path: Path) -> Config:
    raw: dict[str, Any] = {
        "office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky"},
        "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(tmp_path / "data")]},
        "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "repo")},
                               {"name": "offsite", "repository": "rest:http://127.0.0.1:9/x/"}],
                   "connect_timeout_seconds": 1},
        "logs": {"journald": "off"},
    }
    return parse_config(raw, tmp_path / "secops.toml")


def ok(db: StateDB, target: str, started: float) -> None:
    record_results(db, [TargetResult(target, ok=True, snapshot_id=f"{target}{started:.0f}")],
                   started=started, now=started + 20, now_iso=iso(started + 20), retry_max=900)


def failed(db: StateDB, target: str, when: float) -> None:
    """What the daemon does on a failed backup, at ``when``: the result (and its audit
    record), then the ``backup.failed`` event (and its own audit record)."""
    with mock.patch.object(audit_log, "iso_utc_now", lambda: iso(when)):
        record_results(db, [TargetResult(target, ok=False, error="target unreachable")],
                       started=when, now=when, now_iso=iso(when), retry_max=900)
        db.add_event(iso(when), "backup.failed", "daemon", "medium",
                     {"target": target, "error": "target unreachable", "paths": []})


def open_incident(store: IncidentStore, monkeypatch: pytest.MonkeyPatch, when: float,
                  playbook: str, kind: str) -> str:
    monkeypatch.setattr(incidents_module, "time", types.SimpleNamespace(time=lambda: when))
    inc, _ = store.open_or_join(playbook, {"kind": kind, "details": {}}, "critical")
    return inc.id


@pytest.fixture
def week_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Week 2026-W11 (9-15 March): local 4 ok + 1 failed, offsite 5 ok; detections,
    incidents, drills, and data just outside the week that must not count."""
    cfg = make_cfg(tmp_path)
    state = tmp_path / "state"
    ensure_keys(state)
    started_audit_log(state, "tan-ky").record("audit.genesis", "test", {"office": "tan-ky"})
    db = StateDB(state / "state.db", office="tan-ky")
    db.ensure_targets(["local", "offsite"])
    ok(db, "local", at(8, 22))                  # Sunday before: only the first gap uses it
    for started in (at(9, 8), at(9, 9), at(10, 9), at(12, 9)):
        ok(db, "local", started)                # gaps 10 h, 1 h, 24 h, 48 h
    failed(db, "local", at(13, 10))
    for i in range(5):
        ok(db, "offsite", at(9, 10) + i * 1800)  # every 30 minutes
    ok(db, "local", at(16, 6))                  # Monday after: not this week
    db.add_event(iso(at(10, 11)), "integrity.unauthorized_change", "daemon", "high",
                 {"paths": ["/srv/bau-cu/Biên bản kiểm phiếu <tổ 1>.docx"]})
    db.add_event(iso(at(11, 2)), "canary.touched", "daemon", "critical",
                 {"paths": ["/srv/bau-cu/~secops-canary.docx"]})
    db.add_event(iso(at(11, 2, 1)), "ransomware.suspected", "daemon", "critical",
                 {"paths": ["/srv/bau-cu/a.csv", "/srv/bau-cu/b.csv"], "score": 12.5})
    db.add_event(iso(at(11, 2, 1)), "integrity.frozen", "daemon", "critical", {"paths": []})
    db.add_event(iso(at(11, 9)), "integrity.unfrozen", "cli", "info", {"paths": []})
    db.add_event(iso(at(8, 12)), "ransomware.suspected", "daemon", "critical",
                 {"paths": ["/srv/old.csv"]})   # the week before
    db.add_event(iso(at(14, 3)), "logs.tampered", "daemon", "high", {"paths": ["/var/log/x"]})
    db.close()
    store = IncidentStore(state / "state.db", "tan-ky")
    old = open_incident(store, monkeypatch, at(2, 9), "old-playbook", "backup.failing")
    store.advance(old, "closed", "test")        # closed the week before: not listed
    inc = open_incident(store, monkeypatch, at(11, 2, 2), "ransomware", "ransomware.suspected")
    store.advance(inc, "contained", "test")
    store.close()
    for when, passed, rto in ((at(15, 3), True, 42.5), (at(15, 4), False, 61.0)):
        history.record(state / "state.db", {
            "time": iso(when), "target": "local", "snapshot_id": "a1b2c3d4e5f6", "ok": passed,
            "files_checked": 120, "bytes": 5_000_000, "rto_s": rto, "rpo_s": 3600.0,
            "report": "/x.json"})
    return cfg


def signed(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "signing_key": FPR,
            "files": {"pdf": "weekly-2026-W11.vi.pdf", "signature": "weekly-2026-W11.vi.pdf.asc"}}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " ") \
        .replace("&#39;", "'").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


# -- weeks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["2026-11", "2026-W1", "2026W11", "26-W11", "2026-W00",
                                 "2025-W53", "2026-W54", "last week"])
def test_bad_week_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match=r"YYYY-Www|has no ISO week") as e:
        weekly.parse_week(bad)
    assert e.value.exit_code == 2


def test_week_parsing_accepts_iso_weeks() -> None:
    assert weekly.parse_week("2026-W11") == (2026, 11)
    assert weekly.parse_week("2026-W53") == (2026, 53)     # 2026 has 53 ISO weeks


def test_monday_morning_means_the_week_that_just_ended() -> None:
    assert weekly.default_week(MONDAY_0700.now()) == "2026-W11"
    assert weekly.default_week(datetime(2026, 3, 16, 0, 5, tzinfo=HCM)) == "2026-W11"
    assert weekly.default_week(datetime(2026, 3, 15, 23, 59, tzinfo=HCM)) == "2026-W10"
    assert weekly.default_week(datetime(2026, 1, 5, 7, 0, tzinfo=HCM)) == "2026-W01"
    assert weekly.default_week(datetime(2026, 1, 4, 7, 0, tzinfo=HCM)) == "2025-W52"


def test_week_boundaries_are_local_midnights() -> None:
    # Monday 05:00 in Saigon is still Sunday in UTC: local time decides.
    sunday_utc = datetime(2026, 3, 15, 22, 0, tzinfo=UTC)
    assert weekly.default_week(sunday_utc) == "2026-W11"
    assert weekly.default_week(sunday_utc, UTC) == "2026-W10"
    for tz in (None, HCM):
        start, end, days = weekly.week_bounds("2026-W11", tz)
        assert start == datetime(2026, 3, 8, 17, 0, tzinfo=UTC)
        assert end == datetime(2026, 3, 15, 17, 0, tzinfo=UTC)
        assert [d.isoformat() for d in (days[0], days[-1])] == ["2026-03-09", "2026-03-15"]
    start, _, _ = weekly.week_bounds("2026-W01", HCM)
    assert start.date().isoformat() == "2025-12-29"


def test_a_week_not_begun_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not begun"):
        weekly.build(make_cfg(tmp_path), "2026-W13", MONDAY_0700)


# -- figures ----------------------------------------------------------------------------------


def test_gap_statistics() -> None:
    s = weekly.gap_stats([10.0, 20.0, 50.0, 150.0], before=None)
    assert (s["gaps"], s["max_s"], s["median_s"], s["p95_s"]) == (3, 100.0, 30.0, 100.0)
    assert weekly.gap_stats([5.0], before=None)["max_s"] is None
    assert weekly.gap_stats([5.0], before=0.0)["max_s"] == 5.0
    assert sum(weekly.gap_stats([0.0, 30.0, 400.0, 90000.0], None)["bins"]) == 3
    assert weekly.success_rate(4, 1) == 80.0 and weekly.success_rate(0, 0) is None


def test_durations_and_numbers_per_language() -> None:
    def d(s: float, lang: str) -> str:
        return weekly.fmt_duration(s, lang).replace("\xa0", " ")

    assert d(42.5, "vi") == "42,5 giây" and d(42.5, "en") == "42.5 s"
    assert d(330, "vi") == "5 phút 30 giây" and d(3600, "en") == "1 h"
    assert d(93600, "vi") == "1 ngày 2 giờ" and d(172800, "en") == "2 d"
    assert weekly.fmt_percent(66.7, "vi").replace("\xa0", " ") == "66,7 %"
    assert weekly.fmt_bytes(1536, "vi").replace("\xa0", " ") == "1,5 KiB"


def test_build_counts_the_week_and_nothing_else(week_state: Config) -> None:
    doc = weekly.build(week_state, None, MONDAY_0700)
    json.dumps(doc)                                        # JSON-able as it is
    assert doc["week"]["label"] == "2026-W11" and doc["week"]["complete"] is True
    by = {b["target"]: b for b in doc["backups"]["targets"]}
    local, offsite = by["local"], by["offsite"]
    assert (local["ok"], local["failed"], local["success_rate"]) == (4, 1, 80.0)
    assert (offsite["ok"], offsite["failed"], offsite["success_rate"]) == (5, 0, 100.0)
    assert local["rpo"]["max_s"] == 48 * 3600 and local["rpo"]["median_s"] == 17 * 3600
    assert local["rpo"]["gaps"] == 4 and offsite["rpo"]["max_s"] == 1800
    assert local["per_day"] == [[2, 0], [1, 0], [0, 0], [1, 0], [0, 1], [0, 0], [0, 0]]
    assert offsite["per_day"][0] == [5, 0]
    assert doc["integrity"]["counts"] == {
        "integrity.unauthorized_change": 1, "ransomware.suspected": 1, "canary.touched": 1}
    assert doc["integrity"]["total"] == 3
    assert doc["integrity"]["containment"]["counts"] == {"integrity.frozen": 1,
                                                         "integrity.unfrozen": 1}
    [inc] = doc["incidents"]["items"]
    assert inc["state"] == "contained" and inc["new"] is True
    assert doc["drills"]["count"] == 2 and doc["drills"]["passed"] == 1
    assert doc["drills"]["rto_max_s"] == 61.0
    assert doc["audit"]["ok"] is True and doc["audit"]["records"] > 10
    assert doc["logs"]["tampered_events"] == 1 and doc["logs"]["seal_configured"] is False
    storage = {s["target"]: s for s in doc["storage"]["targets"]}
    assert not storage["local"]["ok"] and "password file" in storage["local"]["error"]
    assert not storage["offsite"]["ok"] and storage["offsite"]["error"]
    assert doc["storage"]["disks"][0]["ok"] and doc["storage"]["disks"][0]["free"] > 0


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_both_languages_show_every_required_field(week_state: Config, lang: str) -> None:
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    html = weekly.render_html(doc, lang)
    text = text_of(html)
    assert f'<html lang="{lang}">' in html
    for field in REQUIRED[lang] + FIGURES[lang]:
        assert field in text, field
    assert "UBND xã Tân Kỳ" in text and "2026-W11" in text
    assert "8D6C 0F3B 2A1E 4F5C 6B7A 8D9E 0F1A 2B3C 4D5E 6F70" in text
    assert "gpg --verify weekly-2026-W11.vi.pdf.asc weekly-2026-W11.vi.pdf" in text
    assert "Biên bản kiểm phiếu &lt;tổ 1&gt;.docx" in html          # escaped
    assert html.count("<svg") == 2 and "<script" not in html
    assert not re.search(r'(src|href)="(https?:|//)', html)       # self-contained
    assert "@page" in html and "size: A4" in html
    other = "en" if lang == "vi" else "vi"
    assert REQUIRED[other][0] not in text


def test_both_dictionaries_have_the_same_words() -> None:
    vi, en = words("vi").table("weekly"), words("en").table("weekly")
    assert set(vi) == set(en)
    assert len(vi["rpo_bins"].split("|")) == len(weekly.RPO_BOUNDS) + 1


def test_an_empty_office_still_gets_a_report(tmp_path: Path) -> None:
    doc = signed(weekly.build(make_cfg(tmp_path), None, MONDAY_0700))
    text = text_of(weekly.render_html(doc, "vi"))
    assert "Không có sự cố nào trong tuần." in text
    assert "Không có lần diễn tập khôi phục nào trong tuần." in text
    assert "Chưa có nhật ký kiểm toán" in text


def test_build_and_render_a_busy_week_fast(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    db = StateDB(tmp_path / "state" / "state.db")
    start = at(9, 0)
    with db.db:
        db.db.executemany("INSERT INTO backups VALUES (?, ?, ?, ?)",
                          [(t, f"{t}{i}", start + i * 120.0, start + i * 120.0 + 5)
                           for t in ("local", "offsite") for i in range(7 * 720)])
    for i in range(300):
        db.add_event(iso(start + i * 600), "integrity.unauthorized_change", "daemon", "high",
                     {"paths": [f"/srv/bau-cu/{i}.csv"]})
    db.close()
    t0 = time.monotonic()
    doc = signed(weekly.build(cfg, "2026-W11", MONDAY_0700))
    html = weekly.render_html(doc, "vi")
    elapsed = time.monotonic() - t0
    assert doc["backups"]["targets"][0]["ok"] == 7 * 720
    assert doc["integrity"]["total"] == 300 and len(doc["integrity"]["events"]) == 40
    assert "260 sự kiện khác" in text_of(html)
    assert elapsed < 3.0, f"build + render took {elapsed:.2f} s"


# -- charts -----------------------------------------------------------------------------------


def test_backups_chart_has_one_bar_per_day_per_target() -> None:
    days = [f"T{i} {i:02d}/03" for i in range(2, 9)]
    svg = charts.backups_per_day(
        days, [("local", [(2, 0), (1, 1), (0, 0), (5, 0), (0, 3), (0, 0), (1, 0)]),
               ('kho <"ngoài"> & Co', [(1, 0)] * 7)],
        {"title": "Số lần sao lưu mỗi ngày", "ok": "Thành công", "failed": "Thất bại",
         "y": "Số lần", "target": "Nơi lưu trữ"})
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    panels = root.findall(f"{SVG}g[@class='panel']")
    assert [p.get("data-target") for p in panels] == ["local", 'kho <"ngoài"> & Co']
    for p in panels:
        bars = p.findall(f"{SVG}g[@class='bar']")
        assert [b.get("data-day") for b in bars] == days
    local = panels[0].findall(f"{SVG}g[@class='bar']")
    assert [(int(b.get("data-ok", -1)), int(b.get("data-failed", -1))) for b in local][4] == (0, 3)
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Thất bại" in texts and "Nơi lưu trữ: kho <\"ngoài\"> & Co" in texts
    assert all(t.get("font-family") == "DejaVu Sans" for t in root.iter(f"{SVG}text"))
    assert not re.search(r'fill="(?!#[0-9a-f]{6}")', svg)          # hex colours only


def test_rpo_histogram_bins_and_labels() -> None:
    bins = words("en").table("weekly")["rpo_bins"].split("|")
    svg = charts.rpo_histogram(bins, [("local", [0, 0, 0, 0, 1, 1, 2]),
                                      ("offsite", [0, 0, 0, 4, 0, 0, 0])],
                               {"title": "RPO distribution", "x": "Length of the gap",
                                "y": "Gaps", "none": "-"})
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    groups = root.findall(f".//{SVG}g[@class='bin']")
    assert len(groups) == 2 * len(bins)
    assert sum(int(g.get("data-count", 0)) for g in groups if g.get("data-target") == "local") == 4
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Length of the gap" in texts and "≥ 1 day" in texts
    assert not re.search(r'fill="(?!#[0-9a-f]{6}")', svg)


def test_nice_ticks() -> None:
    assert charts.nice_ticks(0) == [0, 1]
    assert charts.nice_ticks(18) == [0, 5, 10, 15, 20]
    assert charts.nice_ticks(5040)[-1] >= 5040 and len(charts.nice_ticks(5040)) <= 6


# -- the PDF ----------------------------------------------------------------------------------


def test_pdf_keeps_vietnamese_and_draws_the_charts(week_state: Config, tmp_path: Path,
                                                   require_binary: Callable[[str], str]) -> None:
    from PIL import Image

    pdftotext, pdftoppm = require_binary("pdftotext"), require_binary("pdftoppm")
    doc = signed(weekly.build(week_state, None, MONDAY_0700))
    pdf = render_pdf(weekly.render_html(doc, "vi"))
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "weekly.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True,
                          check=True, timeout=60).stdout.decode("utf-8")
    text = text.replace("\xa0", " ")
    for phrase in ("BÁO CÁO TUẦN VỀ AN TOÀN DỮ LIỆU BẦU CỬ", "Sao lưu theo nơi lưu trữ",
                   "TM. ỦY BAN NHÂN DÂN", "Kiểm tra nhật ký kiểm toán", "Độc lập",
                   "Tân Kỳ, ngày 16 tháng 3 năm 2026"):
        assert phrase in text, phrase
    subprocess.run([pdftoppm, "-png", "-r", "80", str(path), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    bar_pixels = 0
    for page in pages:
        with Image.open(page) as img:
            colors = img.convert("RGB").getcolors(maxcolors=1 << 24) or []
        bar_pixels += sum(n for n, c in colors                    # the chart's #4682b4 bars
                          if isinstance(c, tuple) and abs(c[0] - 70) < 12
                          and abs(c[1] - 130) < 12 and abs(c[2] - 180) < 12)
    assert bar_pixels > 500


# -- issue 13: every figure is the state's ----------------------------------------------------


def test_detections_are_the_detectors_events_and_containment_is_apart(
        week_state: Config) -> None:
    """One attack: a canary touched, ransomware suspected, then freeze and unfreeze. Freezing
    and unfreezing are containment, not detections; the count is state.db's."""
    import sqlite3

    doc = weekly.build(week_state, "2026-W11", MONDAY_0700)
    start, end, _ = weekly.week_bounds("2026-W11")
    db = sqlite3.connect(Path(week_state.paths.state_dir) / "state.db")
    rows = db.execute("SELECT kind, count(*) FROM events WHERE time >= ? AND time < ? "
                      "GROUP BY kind", (iso(start.timestamp()), iso(end.timestamp()))).fetchall()
    db.close()
    in_week = dict(rows)
    detections = sum(in_week.get(k, 0) for k in weekly.DETECTION_KINDS)
    assert doc["integrity"]["total"] == detections == 3
    assert {k: in_week.get(k, 0) for k in weekly.CONTAINMENT_KINDS} == \
        doc["integrity"]["containment"]["counts"] == {"integrity.frozen": 1,
                                                      "integrity.unfrozen": 1}
    [row] = [s for s in weekly.view(signed(doc), "vi")["summary"]
             if s["label"] == "Phát hiện về toàn vẹn"]
    assert row["text"].startswith(f"{detections} phát hiện (")
    assert "ngăn chặn 1 lần, gỡ ngăn chặn 1 lần" in row["text"]
    page = text_of(weekly.render_html(signed(doc), "vi"))
    events = page[page.index("Thời điểm Loại Mức độ"):page.index("Biện pháp ngăn chặn")]
    assert "Ngăn chặn" not in events and "Gỡ ngăn chặn" not in events


def _logs_doc(cfg: Config, **logs: Any) -> dict[str, Any]:
    doc = signed(weekly.build(cfg, "2026-W11", MONDAY_0700))
    doc["logs"].update(tampered_events=0, **logs)
    return doc


def _summary_of(doc: dict[str, Any], lang: str, label: str) -> dict[str, str]:
    rows: list[dict[str, str]] = weekly.view(doc, lang)["summary"]
    [row] = [s for s in rows if s["label"] == label]
    return row


def test_a_log_check_with_nothing_to_check_never_says_passed(week_state: Config) -> None:
    off = _logs_doc(week_state)                          # sealing not configured
    row = _summary_of(off, "vi", "Nhật ký hệ thống")
    assert row == {"label": "Nhật ký hệ thống", "status": "na",
                   "text": "chưa cấu hình niêm phong"}
    assert _summary_of(off, "en", "System logs")["text"] == "sealing not configured"
    audit = _summary_of(off, "vi", "Nhật ký kiểm toán")
    assert audit["status"] == "good" and audit["text"].startswith("nguyên vẹn (")
    assert "đạt" not in row["text"] and "passed" not in _summary_of(off, "en", "System logs")

    unsealed = _logs_doc(week_state, seal_configured=True, ok=True,
                         files=[{"path": "/var/log/auth.log", "status": "unsealed"}])
    row = _summary_of(unsealed, "vi", "Nhật ký hệ thống")
    assert (row["status"], row["text"]) == ("na", "không có gì để kiểm tra")

    empty_journal = _logs_doc(week_state, journal={
        "ran": True, "ok": True, "passed": 0, "failed": 0, "unverified": 0, "detail": "",
        "time": None})
    v = weekly.view(empty_journal, "vi")["logs"]
    assert v["journal"] == "không có tệp nào để kiểm tra" and v["journal_class"] == "na"
    assert weekly.view(empty_journal, "en")["logs"]["journal"] == "no file to check"

    sealed = _logs_doc(week_state, seal_configured=True, ok=True,
                       files=[{"path": "/var/log/auth.log", "status": "ok"},
                              {"path": "/var/log/syslog", "status": "unsealed"}])
    row = _summary_of(sealed, "vi", "Nhật ký hệ thống")
    assert (row["status"], row["text"]) == ("good",
                                            "nguyên vẹn (1 tệp được niêm phong đã đối chiếu)")

    nothing_yet = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    nothing_yet["audit"] = {"ok": True, "records": 0, "skipped": "no audit log yet",
                            "tampered_events": 0}
    audit = _summary_of(nothing_yet, "vi", "Nhật ký kiểm toán")
    assert (audit["status"], audit["text"]) == ("na", "Chưa có nhật ký kiểm toán")


def test_an_audit_log_that_could_not_be_checked_says_why_once(week_state: Config) -> None:
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    doc["audit"] = {"ok": False, "records": None, "problem": "unavailable",
                    "detail": "permission denied: audit.jsonl", "tampered_events": 0}
    vi = weekly.view(doc, "vi")["logs"]["audit_text"]
    assert vi == ("KHÔNG KIỂM TRA ĐƯỢC: “permission denied: audit.jsonl” (thông báo gốc của "
                  "hệ thống)")
    en = weekly.view(doc, "en")["logs"]["audit_text"]
    assert en.lower().count("could not be checked") == 1 and "unavailable" not in en, en
    assert "permission denied: audit.jsonl" in en
    assert _summary_of(doc, "vi", "Nhật ký kiểm toán")["status"] == "bad"


def test_durations_below_a_minute_are_seconds_to_one_decimal() -> None:
    def d(s: float, lang: str) -> str:
        return weekly.fmt_duration(s, lang).replace("\xa0", " ")

    assert d(2.5, "vi") == "2,5 giây" and d(2.5, "en") == "2.5 s"
    assert d(1, "vi") == "1 giây" and d(0.04, "vi") == "0 giây"
    assert d(59.97, "vi") == "1 phút" and d(3599.7, "en") == "1 h"


def test_the_drill_table_names_each_snapshot_as_it_is_now(week_state: Config) -> None:
    """A drill's snapshot pinned since (restic tag rewrote it): the id it has now; one the
    target no longer has: said so, no dead id."""
    from secops.backup import lineage

    db = Path(week_state.paths.state_dir) / "state.db"
    lineage.record(db, "local", "a1b2c3d4e5f6", "9f8e7d6c5b4a3210")
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    first, second = doc["drills"]["items"]
    assert first["current_id"] == second["current_id"] == "9f8e7d6c5b4a3210"
    assert first["snapshot_id"] == "a1b2c3d4e5f6" and first["exists"] is None  # not listable
    second["exists"] = False                    # as when the listing lacks it
    page = text_of(weekly.render_html(doc, "vi"))
    drills = re.sub(r"\s+", " ", page[page.index("4. Diễn tập khôi phục"):
                                      page.index("5. Kiểm tra nhật ký")].replace("&nbsp;", " "))
    assert "9f8e7d6c *" in drills and "a1b2c3d4" not in drills
    assert "không còn trong kho" in drills
    assert "báo cáo diễn tập đã ký ghi mã lúc diễn tập" in drills


# -- issue 15: an interruption of protection is in the Monday report --------------------------


def test_a_week_without_interruptions_says_so(week_state: Config) -> None:
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    assert doc["service"]["total"] == 0
    assert _summary_of(doc, "vi", "Bảo vệ liên tục") == {
        "label": "Bảo vệ liên tục", "status": "good", "text": "không có gián đoạn"}
    assert _summary_of(doc, "en", "Continuous protection")["text"] == "no interruption"
    assert "Không có gián đoạn nào trong tuần" in text_of(weekly.render_html(doc, "vi"))


def test_interruptions_of_protection_are_counted_from_the_events(week_state: Config) -> None:
    """A stalled backup, an unreachable target and a full state disk in the week, one stall
    the week before: the report's counts, rows and summary are state.db's events."""
    import sqlite3

    state_db = Path(week_state.paths.state_dir) / "state.db"
    db = StateDB(state_db, office="tan-ky")
    db.add_event(iso(at(10, 14)), "backup.stalled", "daemon", "high",
                 {"target": "offsite", "error": "no progress for 300 s"})
    db.add_event(iso(at(10, 15)), "backup.stalled", "daemon", "high",
                 {"target": "offsite", "error": "no progress for 300 s"})
    db.add_event(iso(at(12, 20)), "target.unreachable", "daemon", "high",
                 {"target": "offsite", "error": "connection refused"})
    db.add_event(iso(at(13, 1)), "state.disk_full", "daemon", "critical",
                 {"error": "database or disk is full", "kept_outside": True})
    db.add_event(iso(at(8, 9)), "backup.stalled", "daemon", "high",
                 {"target": "local"})           # the Sunday before: not this week
    db.close()
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    start, end, _ = weekly.week_bounds("2026-W11")
    conn = sqlite3.connect(state_db)
    marks = ", ".join("?" * len(weekly.SERVICE_KINDS))
    rows = dict(conn.execute(
        f"SELECT kind, count(*) FROM events WHERE time >= ? AND time < ? "  # noqa: S608
        f"AND kind IN ({marks}) GROUP BY kind",
        (iso(start.timestamp()), iso(end.timestamp()), *weekly.SERVICE_KINDS)).fetchall())
    conn.close()
    assert rows == {"backup.stalled": 2, "target.unreachable": 1, "state.disk_full": 1}
    assert {k: n for k, n in doc["service"]["counts"].items() if n} == rows
    assert doc["service"]["total"] == sum(rows.values()) == 4

    vi = _summary_of(doc, "vi", "Bảo vệ liên tục")
    assert vi["status"] == "bad" and vi["text"].startswith("4 lần gián đoạn (")
    en = _summary_of(doc, "en", "Continuous protection")
    assert en["status"] == "bad" and en["text"].startswith("4 interruption(s) (")
    for lang, text in (("vi", vi["text"]), ("en", en["text"])):
        w = words(lang)
        listed = ", ".join(f"{n} {w.event(kind)}" for kind, n in doc["service"]["counts"].items()
                           if n)
        assert text.endswith(f" ({listed})"), (lang, text)
        page = text_of(weekly.render_html(doc, lang))
        section = page[page.index(w.table("weekly")["s_service"]):]
        section = section[:section.index("2. ")]
        assert section.count("offsite") == 3 and section.count("connection refused") == 1
        assert "database or disk is full" in section and "local" not in section
        assert section.count(w.event("backup.stalled")) == 2


# -- issue 16: the week's risk review in the Monday report ------------------------------------


def test_the_risk_review_row_is_the_kept_review_s(week_state: Config) -> None:
    from secops.review.model import Result, Review, Text, spec
    from secops.review.store import save

    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    assert _summary_of(doc, "vi", "Rà soát rủi ro bảo mật") == {
        "label": "Rà soát rủi ro bảo mật", "status": "na",
        "text": "chưa rà soát (secops review)"}  # the twin: none yet, never "passed"

    def r(cid: str, sev: str, status: str) -> Result:
        return Result(spec(cid, sev, ("t", "t"), ("v", "w"), ("s", "f")),  # type: ignore[arg-type]
                      status, Text("thấy", "found"))  # type: ignore[arg-type]

    save(Path(week_state.paths.state_dir), Review("2026-03-15T14:00:00Z", (
        r("ssh.root_login", "critical", "fail"), r("samba.smb1", "high", "fail"),
        r("ssh.x11_forwarding", "low", "fail"), r("time.sync", "medium", "pass"))))
    kept = json.loads((Path(week_state.paths.state_dir) / "review" / "last.json").read_text())
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    assert doc["review"] == {"time": kept["time"], "score": kept["score"], "failed": 3,
                             "failed_high": ["samba.smb1", "ssh.root_login"]}
    vi = _summary_of(doc, "vi", "Rà soát rủi ro bảo mật")
    assert vi["status"] == "bad" and vi["text"] == (
        f"{kept['score']}/100 điểm; 2 mục mức cao chưa đạt, 3 mục chưa đạt tất cả (rà soát "
        "lúc 15/03/2026 21:00) (samba.smb1, ssh.root_login)")
    en = _summary_of(doc, "en", "Security risk review")
    assert en["text"].startswith(f"score {kept['score']}/100; 2 high finding(s), 3 failed")
