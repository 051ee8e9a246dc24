"""What a printed report needs to read as an office document, and its numbers (pure).

The layout follows Decree 30/2020/NĐ-CP (Phụ lục I): the issuing agency's name top left
(``org_lines``), the national title and motto top right, under them the place-and-date line
(``date_line``), and the signature block at the end (``signer``); the words are in the
``[paper]`` table of ``words/<lang>.toml``; the HTML is ``templates/paper.html.j2``.

The place is ``[office] place`` when the office set it; otherwise it is derived from the
office's name (``place_of``: "UBND xã Tân Kỳ" -> "Tân Kỳ"); an office name it does not
recognise is used whole, which is still true, only longer.

Numbers as each language writes them: Vietnamese with a decimal comma ("2,5 giây",
"66,7 %"), English with a point; durations below a minute in seconds to one decimal, longer
ones in the two largest units; times in the server's zone, with the zone.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any

from secops.reports.i18n import words

NBSP = "\u00a0"     # a number and its unit stay on one line
DASH = " \u2013 "   # between the parts of a title
# the agency's prefix as offices write it, and the name in full (Decree 30: in capitals)
_COMMITTEE = ("ubnd ", "ủy ban nhân dân ", "uỷ ban nhân dân ")
_COMMITTEE_FULL = "ỦY BAN NHÂN DÂN"
# the administrative unit a commune-level committee is of
_UNITS = ("xã ", "phường ", "thị trấn ", "đặc khu ")


def _split(office_name: str) -> tuple[bool, str]:
    """(is a People's Committee, the rest of the name: "xã Tân Kỳ")."""
    name = " ".join(office_name.split())
    low = name.lower()
    for prefix in _COMMITTEE:
        if low.startswith(prefix):
            return True, name[len(prefix):]
    return False, name


def place_of(office_name: str) -> str:
    """The place for the date line: "UBND xã Tân Kỳ" -> "Tân Kỳ"."""
    committee, rest = _split(office_name)
    if committee:
        low = rest.lower()
        for unit in _UNITS:
            if low.startswith(unit) and rest[len(unit):].strip():
                return rest[len(unit):].strip()
        return rest
    return rest


def ascii_name(text: str) -> str:
    """A Vietnamese name as English text writes it: "Tân Kỳ" -> "Tan Ky"."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def org_lines(office_name: str, lang: str) -> list[str]:
    """The agency's name as the masthead prints it: "ỦY BAN NHÂN DÂN" / "XÃ TÂN KỲ"; in
    English the name as the office wrote it."""
    if lang == "en":
        return [" ".join(office_name.split())]
    committee, rest = _split(office_name)
    return [_COMMITTEE_FULL, rest.upper()] if committee else [rest.upper()]


def date_line(office_name: str, day: date, lang: str, place: str = "") -> str:
    """"Tân Kỳ, ngày 16 tháng 3 năm 2026" (Decree 30: a 0 before days below 10 and the
    months 1 and 2); "Tan Ky, 16 March 2026". The place is ``[office] place`` when the
    office set it, else derived from its name."""
    t = words(lang).table("paper")
    place = " ".join(place.split()) or place_of(office_name)
    if lang == "en":
        month = t["months"].split("|")[day.month - 1]
        return t["date_line"].format(place=ascii_name(place), d=day.day, m=month, y=day.year)
    d = f"{day.day:02d}"
    m = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return t["date_line"].format(place=place, d=d, m=m, y=day.year)


def signer(office_name: str, lang: str) -> dict[str, Any]:
    """The signature block: who signs for the office (the chair of a People's Committee),
    with the hints and the name line left for the pen."""
    t = words(lang).table("paper")
    committee, _ = _split(office_name)
    if committee:
        for_office, title = t["for_committee"], t["chair"]
    else:
        name = office_name.upper() if lang == "vi" else office_name
        for_office, title = t["for_office"].format(office=name), t["head"]
    return {"for_office": for_office, "title": title, "hint": t["sign_hint"],
            "name": t["name_line"], "preparer": t["preparer"],
            "preparer_hint": t["preparer_hint"], "recipients_title": t["recipients"],
            "recipients": words(lang).lines("paper", "recipient_list")}


def masthead(office_name: str, day: date, lang: str, place: str = "") -> dict[str, Any]:
    """Everything the masthead macro prints (``place``: ``[office] place``, if set)."""
    t = words(lang).table("paper")
    committee, _ = _split(office_name)
    return {"org": org_lines(office_name, lang), "nation": t["nation"], "motto": t["motto"],
            "dated": date_line(office_name, day, lang, place),
            "number": t["number"].format(symbol="BC-UBND" if committee else "BC")}


# -- numbers ----------------------------------------------------------------------------------

def number(x: float, lang: str, digits: int = 1) -> str:
    """``x`` to ``digits`` decimals, trailing zeros dropped: "2,5" / "2.5", "42"."""
    text = f"{x:.{digits}f}"
    if digits:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return text.replace(".", ",") if lang == "vi" else text


def percent(x: float | None, lang: str) -> str:
    if x is None:
        return words(lang).term("paper", "dash")
    return f"{number(x, lang)}{NBSP}%" if lang == "vi" else f"{number(x, lang)}%"


def size(n: float | None, lang: str) -> str:
    """Bytes in binary units: "1,5 KiB"."""
    if n is None:
        return words(lang).term("paper", "dash")
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{NBSP}B" if unit == "B" else f"{number(n, lang)}{NBSP}{unit}"
        n /= 1024
    return ""


def duration(seconds: float | None, lang: str) -> str:
    """"2,5 giây", "1 giây", "5 phút 30 giây", "3 giờ 5 phút", "2 ngày 4 giờ" (en: s,
    min, h, d). Below a minute in seconds to one decimal; never "0 giờ 0 phút"."""
    t = words(lang).table("paper")
    if seconds is None:
        return t["dash"]
    if round(seconds, 1) < 60:
        return f"{number(max(seconds, 0.0), lang)}{NBSP}{t['u_s']}"
    units = ((86400, t["u_d"]), (3600, t["u_h"]), (60, t["u_min"]), (1, t["u_s"]))
    s = round(seconds)
    i = next(i for i, (unit, _) in enumerate(units) if s >= unit)
    n, rest = divmod(s, units[i][0])
    text = f"{n}{NBSP}{units[i][1]}"
    m = rest // units[i + 1][0]
    return f"{text} {m}{NBSP}{units[i + 1][1]}" if m else text


def utc_offset(dt: datetime) -> str:
    """"UTC+07:00" for an aware time."""
    off = dt.strftime("%z") or "+0000"
    return f"UTC{off[:3]}:{off[3:]}"


def local_time(iso: str | None, lang: str, *, seconds: bool = False, zone: bool = False
               ) -> str:
    """A JSON time (UTC, "Z") in the server's zone: "15/03/2026 10:00" (vi) or
    "2026-03-15 10:00" (en), with seconds and "(UTC+07:00)" when asked."""
    if not iso:
        return words(lang).term("paper", "dash")
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    clock = "%H:%M:%S" if seconds else "%H:%M"
    text = dt.strftime(("%d/%m/%Y " if lang == "vi" else "%Y-%m-%d ") + clock)
    return f"{text} ({utc_offset(dt)})" if zone else text


def local_date(day: date, lang: str) -> str:
    return day.strftime("%d/%m/%Y" if lang == "vi" else "%Y-%m-%d")
