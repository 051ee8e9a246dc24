"""The printed reports as office documents: the place-and-date line of Decree 30/2020/NĐ-CP
from the office's name, numbers per language, the PDF's document information (every PDF
secops makes has an author and a date) and the page breaks of the weekly report (no table
row alone at the top or the bottom of a page)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from test_weekly_report import (
    MONDAY_0700,
    saigon_time,  # noqa: F401 - the autouse TZ fixture
    signed,
    week_state,  # noqa: F401 - the fixture
)

from secops.config.schema import Config
from secops.reports import paper, weekly
from secops.reports.pdf import PdfMeta, render_pdf


def test_the_place_comes_from_the_office_name() -> None:
    assert paper.place_of("UBND xã Tân Kỳ") == "Tân Kỳ"
    assert paper.place_of("Ủy ban nhân dân phường Bến Nghé") == "Bến Nghé"
    assert paper.place_of("UBND  thị trấn   Tân Kỳ") == "Tân Kỳ"
    assert paper.place_of("Văn phòng Hội đồng nhân dân") == "Văn phòng Hội đồng nhân dân"
    assert paper.org_lines("UBND xã Tân Kỳ", "vi") == ["ỦY BAN NHÂN DÂN", "XÃ TÂN KỲ"]
    assert paper.org_lines("UBND xã Tân Kỳ", "en") == ["UBND xã Tân Kỳ"]


def test_the_date_line_is_written_as_decree_30_says() -> None:
    office = "UBND xã Tân Kỳ"
    assert paper.date_line(office, date(2026, 3, 16), "vi") == \
        "Tân Kỳ, ngày 16 tháng 3 năm 2026"
    # a 0 before days below 10 and before the months 1 and 2, not before 3 ... 12
    assert paper.date_line(office, date(2026, 2, 5), "vi") == "Tân Kỳ, ngày 05 tháng 02 năm 2026"
    assert paper.date_line(office, date(2026, 11, 9), "vi") == "Tân Kỳ, ngày 09 tháng 11 năm 2026"
    assert paper.date_line(office, date(2026, 3, 16), "en") == "Tan Ky, 16 March 2026"
    # [office] place, when the office set it, wins over the name
    assert paper.date_line(office, date(2026, 3, 6), "vi", " Tân  Kỳ ") == \
        "Tân Kỳ, ngày 06 tháng 3 năm 2026"
    assert paper.date_line("Văn phòng", date(2026, 3, 6), "vi", "Xã Tân Kỳ") == \
        "Xã Tân Kỳ, ngày 06 tháng 3 năm 2026"


def test_numbers_per_language() -> None:
    assert paper.number(2.5, "vi") == "2,5" and paper.number(2.5, "en") == "2.5"
    assert paper.number(42.0, "vi") == "42" and paper.number(-0.01, "en") == "0"
    assert paper.percent(66.7, "vi") == "66,7\u00a0%" and paper.percent(66.7, "en") == "66.7%"
    assert paper.size(1536, "vi") == "1,5\u00a0KiB" and paper.size(1536, "en") == "1.5\u00a0KiB"
    assert paper.duration(2.5, "vi") == "2,5\u00a0giây"
    assert paper.duration(1.0, "vi") == "1\u00a0giây"            # never "0 giờ 0 phút"
    assert paper.local_time("2026-03-15T03:00:00Z", "vi", seconds=True, zone=True) == \
        "15/03/2026 10:00:00 (UTC+07:00)"
    assert paper.local_time("2026-03-15T03:00:00Z", "en", zone=True) == \
        "2026-03-15 10:00 (UTC+07:00)"


def pdfinfo(path: Path, require_binary: Callable[[str], str]) -> dict[str, str]:
    out = subprocess.run([require_binary("pdfinfo"), "-isodates", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
                                                 out.splitlines())}


def test_every_pdf_has_an_author_and_a_date(tmp_path: Path,
                                            require_binary: Callable[[str], str]) -> None:
    made = datetime(2026, 3, 16, 7, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    html = '<html lang="vi"><title>Báo cáo</title><body><p>Tân Kỳ</p></body></html>'
    with_meta = tmp_path / "a.pdf"
    with_meta.write_bytes(render_pdf(html, PdfMeta(
        title="BÁO CÁO TUẦN 2026-W11", author="UBND xã Tân Kỳ", created=made,
        subject="Tuần 2026-W11", lang="vi")))
    info = pdfinfo(with_meta, require_binary)
    assert info["Title"] == "BÁO CÁO TUẦN 2026-W11" and info["Author"] == "UBND xã Tân Kỳ"
    assert info["Subject"] == "Tuần 2026-W11" and info["Creator"].startswith("secops ")
    assert info["CreationDate"].startswith("2026-03-16T07:00:00+07")
    plain = tmp_path / "b.pdf"                 # a caller that passes nothing still gets them
    plain.write_bytes(render_pdf(html))
    info = pdfinfo(plain, require_binary)
    assert info["Author"] == "secops" and info["Title"] == "Báo cáo"
    assert re.match(r"\d{4}-\d\d-\d\dT", info["CreationDate"])


def test_the_weekly_pdf_names_the_office_the_week_and_when(
        week_state: Config, tmp_path: Path,  # noqa: F811
        require_binary: Callable[[str], str]) -> None:
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    path = tmp_path / "w.pdf"
    path.write_bytes(render_pdf(weekly.render_html(doc, "en"), weekly.pdf_meta(doc, "en")))
    info = pdfinfo(path, require_binary)
    assert info["Author"] == "UBND xã Tân Kỳ" and "2026-W11" in info["Title"]
    assert info["CreationDate"].startswith("2026-03-16T07:00:00+07")


def test_no_table_row_stands_alone_on_a_page(
        week_state: Config, tmp_path: Path,  # noqa: F811
        require_binary: Callable[[str], str]) -> None:
    """The drills table (6 rows) is pushed down the page row by row (more detections above
    it); wherever a page break falls in it, each side keeps at least two rows."""
    pdftotext = require_binary("pdftotext")
    doc = signed(weekly.build(week_state, "2026-W11", MONDAY_0700))
    event, drill = doc["integrity"]["events"][0], doc["drills"]["items"][0]
    doc["drills"].update(count=6, items=[{**drill, "files_checked": 7001 + i}
                                         for i in range(6)])
    splits = []
    for n in range(6, 28, 2):
        doc["integrity"].update(total=n, events=[
            {**event, "files": 1, "paths": [f"/srv/bau-cu/ev-{i:02d}.csv"]} for i in range(n)])
        path = tmp_path / f"w{n}.pdf"
        path.write_bytes(render_pdf(weekly.render_html(doc, "vi")))
        text = subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        rows = [c for page in text.split("\f") if (c := len(re.findall(r"\b700\d\b", page)))]
        assert sum(rows) == 6, (n, rows)
        if len(rows) > 1:
            splits.append(rows)
        assert min(rows) >= 2, f"{n} detections: drill rows per page {rows}"
    assert splits, "the table never crossed a page: the test proves nothing"
