"""The legal references as data: the instrument that applies is picked by date, at the
boundaries; every instrument carries its source and effective date; what the search could
not confirm is marked so in the data and in every citation; citations are Vietnamese with
their diacritics (NFC) and the dates written as Vietnamese documents write them."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secops.errors import ConfigError
from secops.reports import law
from secops.reports.law import in_force, law_in_force, parse, vi_date

ALL = law.instruments()


def ids(at: date) -> list[str]:
    return [i.id for i in law_in_force(at).instruments]


# -- picked by date ---------------------------------------------------------------------------

@pytest.mark.parametrize(("at", "expected"), [
    (date(2023, 6, 30), []),
    (date(2023, 7, 1), ["nd-13-2023"]),
    (date(2025, 12, 31), ["nd-13-2023"]),
    (date(2026, 1, 1), ["luat-91-2025", "nd-356-2025"]),
    (date(2026, 6, 30), ["luat-91-2025", "nd-356-2025"]),
    (date(2026, 7, 1), ["luat-91-2025", "nd-356-2025", "luat-116-2025"]),
    (date(2026, 8, 18), ["luat-91-2025", "nd-356-2025", "luat-116-2025"]),
    (date(2026, 8, 19), ["luat-91-2025", "nd-356-2025", "luat-116-2025", "nd-331-2026"]),
])
def test_the_instruments_in_force_are_picked_by_date_at_the_boundaries(
        at: date, expected: list[str]) -> None:
    assert ids(at) == expected


def test_a_report_of_2025_cites_decree_13_form_03() -> None:
    regime = law_in_force(date(2025, 12, 31))
    assert regime.breach_form is not None and regime.breach_notice is not None
    assert regime.breach_form.instrument.number == "13/2023/NĐ-CP"
    assert regime.breach_form.provision.form == "03"
    assert regime.breach_notice.provision.deadline_hours == 72
    assert regime.breach_notice.provision.clock == "occurrence"
    assert regime.verified
    assert regime.incident_notice is None  # no information-system instrument is listed


def test_a_report_of_2026_cites_the_law_and_decree_356() -> None:
    regime = law_in_force(date(2026, 1, 1))
    assert regime.breach_notice is not None and regime.breach_form is not None
    assert regime.breach_notice.instrument.number == "91/2025/QH15"
    assert regime.breach_notice.provision.clock == "detection"
    assert regime.breach_form.instrument.number == "356/2025/NĐ-CP"
    assert not regime.verified  # Điều 23 and Mẫu số 08 are not confirmed by an official copy


def test_the_information_system_deadlines_start_with_decree_331() -> None:
    assert law_in_force(date(2026, 8, 18)).incident_notice is None
    notice = law_in_force(date(2026, 8, 19)).incident_notice
    assert notice is not None
    assert (notice.provision.notice_hours, notice.provision.report_hours) == (24, 72)
    assert not notice.verified


@given(st.dates(min_value=date(2020, 1, 1), max_value=date(2032, 12, 31)))
def test_on_any_day_each_topic_comes_from_at_most_one_instrument(at: date) -> None:
    regime = in_force(ALL, at)
    for topic in ("breach_notice", "breach_form", "incident_duty", "incident_notice"):
        assert len([p for i in regime.instruments for p in i.provision
                    if p.topic == topic]) <= 1
    assert all(i.applies(at) for i in regime.instruments)


def test_a_replaced_instrument_stops_the_day_its_successor_starts() -> None:
    by_id = {i.id: i for i in ALL}
    for inst in ALL:
        if inst.replaced_by:
            successor = by_id[inst.replaced_by]
            assert inst.until == successor.effective
            assert not inst.applies(successor.effective)
            assert inst.applies(successor.effective - timedelta(days=1))


# -- every fact says where it comes from ------------------------------------------------------

def test_every_instrument_has_its_source_effective_date_and_what_was_checked() -> None:
    assert len(ALL) >= 5
    for inst in ALL:
        assert inst.sources and inst.checked, inst.id
        assert isinstance(inst.effective, date) and inst.signed <= inst.effective, inst.id
        assert all(s.url or s.kind == "secondary" for s in inst.sources), inst.id
        assert inst.verified or inst.missing, inst.id
        for p in inst.provision:
            assert p.sources and p.checked, (inst.id, p.topic)
            assert p.verified or p.missing, (inst.id, p.topic)


def test_what_rests_only_on_secondary_notes_is_not_marked_verified() -> None:
    for inst in ALL:
        items: list[tuple[bool, tuple[law.Source, ...]]] = [
            (inst.verified, inst.sources), *((p.verified, p.sources) for p in inst.provision)]
        for verified, sources in items:
            if all(s.kind == "secondary" for s in sources):
                assert not verified, inst.id


# -- citations ---------------------------------------------------------------------------------

def test_the_2025_citations_in_vietnamese_and_english() -> None:
    regime = law_in_force(date(2025, 6, 1))
    assert regime.breach_form_citation("vi") == (
        "Theo Mẫu số 03, Nghị định số 13/2023/NĐ-CP ngày 17 tháng 4 năm 2023 của Chính phủ")
    assert regime.breach_form_citation("en") == (
        "Following Form No. 03, Decree No. 13/2023/NĐ-CP of 17 April 2023 of the Government")
    assert regime.breach_notice_citation("vi") == (
        "khoản 1 Điều 23 Nghị định số 13/2023/NĐ-CP ngày 17 tháng 4 năm 2023 của Chính phủ: "
        "thông báo cho Bộ Công an (Cục An ninh mạng và phòng, chống tội phạm sử dụng công "
        "nghệ cao) chậm nhất 72 giờ sau khi xảy ra hành vi vi phạm")
    assert regime.follows("vi") == (
        "Căn cứ pháp lý áp dụng ngày 01 tháng 6 năm 2025: Nghị định số 13/2023/NĐ-CP "
        "ngày 17 tháng 4 năm 2023 của Chính phủ.")


def test_the_2026_citations_say_what_is_unverified() -> None:
    regime = law_in_force(date(2026, 2, 3))
    assert regime.breach_form_citation("vi") == (
        "Theo Mẫu số 08 (chưa đối chiếu với văn bản chính thức), Nghị định số "
        "356/2025/NĐ-CP ngày 31 tháng 12 năm 2025 của Chính phủ")
    assert regime.breach_notice_citation("vi") == (
        "khoản 1 Điều 23 Luật Bảo vệ dữ liệu cá nhân số 91/2025/QH15 (chưa đối chiếu với "
        "văn bản chính thức): thông báo cho cơ quan chuyên trách bảo vệ dữ liệu cá nhân "
        "(Bộ Công an) chậm nhất 72 giờ kể từ khi phát hiện hành vi vi phạm")
    assert regime.follows("en") == (
        "Law applied on 3 February 2026: Law on Personal Data Protection No. 91/2025/QH15; "
        "Decree No. 356/2025/NĐ-CP of 31 December 2025 of the Government.")
    assert law_in_force(date(2026, 9, 1)).incident_citation("vi") == (
        "điểm d khoản 2 Điều 31 Nghị định số 331/2026/NĐ-CP ngày 19 tháng 8 năm 2026 của "
        "Chính phủ (chưa đối chiếu với văn bản chính thức): thông báo ban đầu sự cố nghiêm "
        "trọng trong 24 giờ, báo cáo sự cố cho Bộ Công an trong 72 giờ kể từ khi phát hiện")


@given(st.dates(min_value=date(2023, 1, 1), max_value=date(2030, 12, 31)))
def test_every_citation_is_nfc_vietnamese_with_its_diacritics(at: date) -> None:
    regime = law_in_force(at)
    texts = [regime.follows("vi"), regime.breach_form_citation("vi"),
             regime.breach_notice_citation("vi"), regime.incident_citation("vi")]
    for text in filter(None, texts):
        assert unicodedata.is_normalized("NFC", text)
        assert "Nghi dinh" not in text and "ND-CP" not in text  # never stripped of its marks
    if regime.breach_form is not None:
        assert "Nghị định số" in str(regime.breach_form_citation("vi"))


@pytest.mark.parametrize(("day", "text"), [
    (date(2023, 4, 17), "ngày 17 tháng 4 năm 2023"),
    (date(2026, 1, 1), "ngày 01 tháng 01 năm 2026"),
    (date(2026, 2, 28), "ngày 28 tháng 02 năm 2026"),
    (date(2026, 3, 9), "ngày 09 tháng 3 năm 2026"),
    (date(2025, 12, 31), "ngày 31 tháng 12 năm 2025"),
])
def test_vietnamese_dates_take_a_leading_zero_below_ten_and_in_january_february(
        day: date, text: str) -> None:
    assert vi_date(day) == text


# -- a change of law is a change of data ------------------------------------------------------

BASE = """
schema = 1
checked_on = 2026-12-02
[[instrument]]
id = "old"
kind = "decree"
domain = "personal_data"
number = "1/2030/NĐ-CP"
title_vi = "Nghị định cũ"
title_en = "Old decree"
issuer_vi = "Chính phủ"
issuer_en = "the Government"
signed = 2030-01-01
effective = 2030-02-01
{old_tail}
verified = true
checked = "t"
sources = [{{ kind = "news", url = "https://example.invalid/a", title = "a" }}]
[[instrument.provision]]
topic = "breach_notice"
article_vi = "Điều 5"
article_en = "Article 5"
deadline_hours = 48
clock = "detection"
form = "01"
verified = {verified}
checked = "t"
{missing}
sources = [{{ kind = "news", url = "https://example.invalid/a", title = "a" }}]
{new}
"""
NEW = """
[[instrument]]
id = "new"
kind = "decree"
domain = "personal_data"
number = "9/2031/NĐ-CP"
title_vi = "Nghị định mới"
title_en = "New decree"
issuer_vi = "Chính phủ"
issuer_en = "the Government"
signed = 2031-01-01
effective = 2031-03-01
replaces = ["old"]
verified = true
checked = "t"
sources = [{ kind = "news", url = "https://example.invalid/b", title = "b" }]
[[instrument.provision]]
topic = "breach_notice"
article_vi = "Điều 7"
article_en = "Article 7"
deadline_hours = 24
clock = "detection"
verified = true
checked = "t"
sources = [{ kind = "news", url = "https://example.invalid/b", title = "b" }]
"""


def text(*, old_tail: str = "", verified: str = "true", missing: str = "",
         new: str = "") -> str:
    return BASE.format(old_tail=old_tail, verified=verified, missing=missing, new=new)


def test_a_new_decree_in_the_data_changes_the_citation_on_its_effective_date() -> None:
    data = parse(text(old_tail='until = 2031-03-01\nreplaced_by = "new"', new=NEW))
    before, after = in_force(data, date(2031, 2, 28)), in_force(data, date(2031, 3, 1))
    assert before.breach_notice is not None and after.breach_notice is not None
    assert before.breach_notice.provision.deadline_hours == 48
    assert after.breach_notice.provision.deadline_hours == 24
    assert "Nghị định số 9/2031/NĐ-CP ngày 01 tháng 01 năm 2031" in str(
        after.breach_notice_citation("vi"))


def test_the_untouched_data_parses() -> None:
    assert [i.id for i in parse(text())] == ["old"]


@pytest.mark.parametrize(("bad", "says"), [
    (text(verified="false"), "missing"),
    (text(new=NEW.replace('replaces = ["old"]', "")), "two instruments in force"),
    (text(old_tail="until = 2031-03-01", new=NEW), "replaces must name"),
    (text(old_tail='until = 2031-04-01\nreplaced_by = "new"', new=NEW), "replaced_by must"),
    (text(old_tail="until = 2030-01-15"), "out of order"),
    (text(old_tail='surprise = "field"'), "unknown field"),
    (text().replace("schema = 1", "schema = 2"), "schema 2"),
])
def test_inconsistent_data_is_refused_naming_the_problem(bad: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse(bad)


def test_an_unverified_provision_is_marked_in_its_citation() -> None:
    data = parse(text(verified="false", missing='missing = "the article text"'))
    cited = in_force(data, date(2030, 6, 1)).breach_notice_citation("en")
    assert cited == ("Article 5 of Decree No. 1/2030/NĐ-CP of 1 January 2030 of the "
                     "Government (not checked against the official text): notify within "
                     "48 hours of detecting the violation")
