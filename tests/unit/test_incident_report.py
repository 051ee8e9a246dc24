"""The incident report: every field the personal-data breach notice of the law in force (an
incident of May 2026: Law 91/2025/QH15, Decree 356/2025/NĐ-CP, Mẫu số 08) and the NIST
sections ask for, in Vietnamese and English, with intact diacritics in HTML, Markdown and
the PDF."""

from __future__ import annotations

import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.errors import UsageError
from secops.playbooks.incidents import IncidentStore
from secops.reports.incident_report import (
    build,
    count_records,
    iso,
    local,
    render_html,
    render_md,
)

FPR = "C5A7CA74D4D17F3C784EDEBB66AB4D0EE09B6312"
REQUIRED = {
    "vi": ["Mô tả vi phạm dữ liệu cá nhân", "Thời gian, địa điểm", "Hành vi vi phạm",
           "Tổ chức, cá nhân liên quan", "Loại và số lượng dữ liệu cá nhân",
           "Thông tin liên hệ của bộ phận bảo vệ dữ liệu", "Hậu quả, thiệt hại có thể xảy ra",
           "Biện pháp đã và sẽ thực hiện", "Thời hạn 72 giờ và tình trạng thông báo",
           "Phát hiện và phân tích", "Ngăn chặn", "Khôi phục", "Bài học kinh nghiệm",
           "Khôi phục trong sự cố", "Diễn tập gần nhất", "Người lập báo cáo",
           "Lãnh đạo phê duyệt", "Chữ ký số", "Mẫu số 08", "356/2025/NĐ-CP", "91/2025/QH15",
           "72 giờ kể từ khi phát hiện vi phạm", "chưa đối chiếu với văn bản chính thức"],
    "en": ["Description of the personal data breach", "Time and place", "The act",
           "Organisations and individuals involved", "Types and amount of personal data",
           "Data-protection contact", "Possible consequences and damage",
           "Measures taken and planned", "The 72-hour deadline and notification status",
           "Detection and analysis", "Containment", "Recovery", "Lessons learned",
           "Restores during the incident", "Latest drills", "Prepared by",
           "Approved by (office leadership)", "Digital signature", "Form No. 08",
           "356/2025/NĐ-CP", "91/2025/QH15", "72 hours after the breach was detected",
           "not checked against the official text"],
}
TITLE = {"vi": "BÁO CÁO SỰ CỐ", "en": "INCIDENT REPORT"}
NOT_DECLARED = {"vi": "chưa khai báo", "en": "not declared"}
EVENT_TS = 1779414429.0   # 2026-05-22T01:47:09Z, the event's time
VOTERS = "STT,Họ và tên,Ngày sinh,Giới tính\n1,Nguyễn Văn Ánh,01/02/1980,Nam\n" \
         "2,Trần Thị Bích,03/04/1990,Nữ\n3,Lê Văn Đức,05/06/1970,Nam\n"


def make_config(tmp_path: Path, **office: Any) -> Config:
    data = tmp_path / "bau-cu"
    (data / "danh-sach-cu-tri").mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {
        "office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky", "address": "Xã Tân Kỳ, Nghệ An",
                   "contact_name": "Nguyễn Thị Hoà", "contact_title": "Công chức Văn phòng",
                   "contact_phone": "0238 3800 000", "contact_email": ""},
        "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(data)]},
        "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "repo")}]},
    }
    raw["office"].update(office)
    return parse_config(raw, tmp_path / "secops.toml")


def backdate(store: IncidentStore, incident_id: str, ts: float) -> None:
    """Open the incident at ``ts`` (the store opens at the wall clock): the law in force,
    the deadline and the ids follow the incident's own time, so tests pick it."""
    with store._db:
        store._db.execute("UPDATE incidents SET opened = ?, updated = ? WHERE id = ?",
                          (ts, ts, incident_id))
        store._db.execute("UPDATE incident_timeline SET time = ? WHERE incident = ?",
                          (ts, incident_id))


@pytest.fixture
def office(tmp_path: Path) -> tuple[Config, IncidentStore, str]:
    cfg = make_config(tmp_path)
    voters = Path(cfg.paths.watch[0]) / "danh-sach-cu-tri" / "thon-1.csv"
    voters.write_text(VOTERS, encoding="utf-8")
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", "tan-ky")
    event = {"kind": "integrity.unauthorized_change", "time": "2026-05-22T01:47:09Z",
             "source": "integrity", "severity": "high",
             "details": {"paths": [str(voters)], "changes": [
                 {"kind": "modified", "path": str(voters),
                  "diff": "--- trước (before)\n+++ sau (after)\n+4,Người Lạ,<b>x</b>"}]}}
    inc, _ = store.open_or_join("personal-data-breach", event, "critical")
    store.note(inc.id, "step", {"playbook": "personal-data-breach", "step": "draft",
                                "type": "action", "ok": True, "error": None,
                                "outputs": {"report": "incident.md"}})
    backdate(store, inc.id, EVENT_TS)
    return cfg, store, inc.id


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_both_languages_render_every_required_field(
        office: tuple[Config, IncidentStore, str], lang: str) -> None:
    cfg, store, incident = office
    opened = store.get(incident).opened
    doc = build(cfg, store, incident, lang, now=opened + 3600, signer=FPR,
                bundle_name=f"{incident}.tar.gz")
    html, md = render_html(doc, lang), render_md(doc, lang)
    for text in (html, md):
        assert TITLE[lang] in text
        for heading in REQUIRED[lang]:
            assert heading in text, heading
        # the data-protection contact, the undeclared field said as such
        assert "Nguyễn Thị Hoà" in text and "0238 3800 000" in text
        assert NOT_DECLARED[lang] in text
        # the 72-hour deadline, in local time, and the time left
        assert local(iso(opened + 72 * 3600)) in text
        assert ("còn 71 giờ 0 phút" if lang == "vi" else "71 h 0 min left") in text
        # the amount of personal data: 3 voters, their fields
        assert "Họ và tên, Ngày sinh, Giới tính" in text
        assert ("3 bản ghi" if lang == "vi" else "3 records") in text
        assert FPR in text and incident in text
        assert unicodedata.is_normalized("NFC", text)
    assert doc["breach"]["personal_data"]["total_records"] == 3
    assert doc["deadline"]["status"] == "pending"


def test_html_is_self_contained_printable_and_keeps_diacritics(
        office: tuple[Config, IncidentStore, str]) -> None:
    cfg, store, incident = office
    html = render_html(build(cfg, store, incident, "vi", signer=FPR), "vi")
    assert html.startswith("<!DOCTYPE html>") and '<html lang="vi">' in html
    assert '<meta charset="utf-8">' in html and "size: A4" in html
    assert "Thời hạn 72 giờ và tình trạng thông báo" in html  # raw UTF-8, not entities
    for external in ("http://", "https://", "<link", "<script", "src=", "url("):
        assert external not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # the diff is escaped
    assert "Người Lạ" in html


def test_notification_status_follows_the_approvals(
        office: tuple[Config, IncidentStore, str]) -> None:
    cfg, store, incident = office
    opened = store.get(incident).opened
    late = build(cfg, store, incident, "vi", now=opened + 73 * 3600)
    assert late["deadline"]["status"] == "overdue"
    md = render_md(late, "vi")
    assert "QUÁ HẠN" in md and "Lý do thông báo chậm" in md
    assert "OVERDUE" in render_md(build(cfg, store, incident, "en", now=opened + 73 * 3600), "en")
    store.request_approval(incident, "notified", "Đã gửi thông báo?", 3600)
    store.decide(incident, "notified", approve=True, by="cli:chu-tich")
    with store._db:   # decided 10 hours after the incident opened
        store._db.execute("UPDATE incident_approvals SET decided = ?", (opened + 36000,))
    done = build(cfg, store, incident, "vi", now=opened + 80 * 3600)
    assert done["deadline"]["status"] == "notified"
    assert done["deadline"]["notices"][0]["actor"] == "cli:chu-tich"
    md = render_md(done, "vi")
    assert "Đã thông báo lúc" in md and "QUÁ HẠN" not in md
    assert "người dùng chu-tich qua dòng lệnh" in md  # an actor, in words
    assert "cli:chu-tich" not in md


def test_an_unsigned_report_never_says_it_is_signed(
        office: tuple[Config, IncidentStore, str]) -> None:
    cfg, store, incident = office
    for lang, draft in (("vi", "BẢN NHÁP — CHƯA KÝ SỐ"), ("en", "DRAFT — NOT DIGITALLY SIGNED")):
        doc = build(cfg, store, incident, lang)
        assert doc["signature"] == {"signed": False, "gpg_fingerprint": None, "bundle": None,
                                    "file": None, "encrypted_to": []}
        for text in (render_html(doc, lang), render_md(doc, lang)):
            assert draft in text
            assert "OpenPGP" not in text
        signed = render_md(build(cfg, store, incident, lang, signer=FPR,
                                 bundle_name="b.tar.gz"), lang)
        assert draft not in signed and FPR in signed and "b.tar.gz.asc" in signed


def test_unknown_incident_is_bad_input(office: tuple[Config, IncidentStore, str]) -> None:
    cfg, store, _ = office
    with pytest.raises(UsageError) as e:
        build(cfg, store, "INC-tan-ky-19990101-001", "vi")
    assert e.value.exit_code == 2


def test_amount_unknown_when_the_list_is_unreadable(
        office: tuple[Config, IncidentStore, str]) -> None:
    cfg, store, incident = office
    (Path(cfg.paths.watch[0]) / "danh-sach-cu-tri" / "thon-1.csv").unlink()
    doc = build(cfg, store, incident, "en")
    assert doc["breach"]["personal_data"]["total_records"] is None
    assert "unknown" in render_md(doc, "en")


def test_count_records() -> None:
    assert count_records(VOTERS.encode()) == (3, ["STT", "Họ và tên", "Ngày sinh",
                                                  "Giới tính"])
    assert count_records(b"1,a\n2,b\n\n") == (2, [])
    assert count_records(b"\xff\xfe\x00") is None


def test_pdf_shows_vietnamese_diacritics(office: tuple[Config, IncidentStore, str],
                                         tmp_path: Path,
                                         require_binary: Callable[[str], str]) -> None:
    from PIL import Image

    from secops.reports.pdf import render_pdf

    pdftotext, pdftoppm = require_binary("pdftotext"), require_binary("pdftoppm")
    cfg, store, incident = office
    pdf = render_pdf(render_html(build(cfg, store, incident, "vi", signer=FPR), "vi"))
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([pdftotext, "-enc", "UTF-8", str(path), "-"], capture_output=True,
                          check=True, timeout=60).stdout.decode("utf-8")
    assert "BÁO CÁO SỰ CỐ" in text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text
    assert "Thời hạn 72 giờ và tình trạng thông báo" in text
    assert "Lãnh đạo phê duyệt".upper() in text  # the signature block
    subprocess.run([pdftoppm, "-r", "60", "-png", "-f", "1", "-l", "1", str(path),
                    str(tmp_path / "page")], check=True, timeout=60)
    page = next(tmp_path.glob("page*.png"))
    with Image.open(page) as img:
        gray = img.convert("L")
        assert gray.size[0] < gray.size[1]  # portrait A4
        dark = sum(gray.histogram()[:128])
        assert dark > 2000  # printed text, not a blank page
