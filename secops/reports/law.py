"""Which law a report follows on a given date, from the data in ``law.toml``.

The reports cite legal instruments (the personal-data breach notice, its form and deadline;
the information-system incident notice). Those change with the law, so they live in
``law.toml``, each with its source and what was verified; this module only validates that
file and picks by date:

    regime = law_in_force(date(2026, 3, 1))
    regime.breach_form_citation("vi")   # "Theo Mẫu số 08 (...), Nghị định số 356/2025/NĐ-CP ..."
    regime.breach_notice.provision.deadline_hours   # 72

``parse`` and ``in_force`` are pure; ``law_in_force`` reads the packaged file once.
A provision or instrument the search could not confirm keeps ``verified = False`` and every
citation built from it says so ("chưa đối chiếu với văn bản chính thức").
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Literal

import msgspec

from secops.errors import ConfigError

Lang = Literal["vi", "en"]
Topic = Literal["breach_notice", "breach_form", "incident_duty", "incident_notice"]
UNVERIFIED = {"vi": " (chưa đối chiếu với văn bản chính thức)",
              "en": " (not checked against the official text)"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


class Source(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: Literal["legal-database", "news", "law-firm", "secondary"]
    title: str
    url: str = ""


class Provision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    topic: Topic
    article_vi: str                  # "khoản 1 Điều 23"
    article_en: str                  # "Article 23(1)"
    verified: bool
    checked: str
    sources: tuple[Source, ...]
    missing: str = ""
    to_vi: str = ""                  # to whom the notice goes
    to_en: str = ""
    deadline_hours: int | None = None   # breach notice
    notice_hours: int | None = None     # incident: first notice (serious incidents)
    report_hours: int | None = None     # incident: the report
    clock: Literal["occurrence", "detection"] | None = None   # what the hours count from
    form: str = ""                   # "03" (Mẫu số 03 / Form No. 03)
    form_name_vi: str = ""
    form_name_en: str = ""


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    kind: Literal["law", "decree"]
    domain: Literal["personal_data", "information_systems"]
    number: str                      # "13/2023/NĐ-CP"
    title_vi: str
    title_en: str
    issuer_vi: str
    issuer_en: str
    signed: date                     # a law: the day the National Assembly adopted it
    effective: date                  # first day it applies
    verified: bool
    checked: str
    sources: tuple[Source, ...]
    missing: str = ""
    until: date | None = None        # first day it no longer applies
    replaced_by: str = ""            # id in this file
    replaces: tuple[str, ...] = ()   # ids in this file
    replaces_text_vi: tuple[str, ...] = ()   # predecessors not listed in this file
    replaces_text_en: tuple[str, ...] = ()
    provision: tuple[Provision, ...] = ()

    def applies(self, at: date) -> bool:
        return self.effective <= at and (self.until is None or at < self.until)

    def reference(self, lang: Lang, *, mark: bool = True) -> str:
        """"Nghị định số 13/2023/NĐ-CP ngày 17 tháng 4 năm 2023 của Chính phủ" /
        "Luật Bảo vệ dữ liệu cá nhân số 91/2025/QH15" (and the English); an unverified
        instrument says so unless ``mark`` is False."""
        if self.kind == "law":
            ref = (f"{self.title_vi} số {self.number}" if lang == "vi"
                   else f"{self.title_en} No. {self.number}")
        elif lang == "vi":
            ref = f"Nghị định số {self.number} {vi_date(self.signed)} của {self.issuer_vi}"
        else:
            ref = f"Decree No. {self.number} of {en_date(self.signed)} of {self.issuer_en}"
        return ref + ("" if self.verified or not mark else UNVERIFIED[lang])


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    schema: int
    checked_on: date
    instrument: tuple[Instrument, ...]


@dataclass(frozen=True)
class Applied:
    """A provision together with the instrument it belongs to."""

    instrument: Instrument
    provision: Provision

    @property
    def verified(self) -> bool:
        return self.instrument.verified and self.provision.verified

    def article(self, lang: Lang) -> str:
        """"khoản 1 Điều 23 Nghị định số 13/2023/NĐ-CP ngày ..." / "Article 23(1) of ...",
        marked once at the end when the article or the instrument is unverified."""
        p, ref = self.provision, self.instrument.reference(lang, mark=False)
        mark = "" if self.verified else UNVERIFIED[lang]
        if lang == "vi":
            return f"{p.article_vi} {ref}{mark}"
        the = "the " if self.instrument.kind == "law" else ""
        return f"{p.article_en} of {the}{ref}{mark}"


@dataclass(frozen=True)
class Regime:
    """The instruments that apply on ``at`` and the provisions the reports cite."""

    at: date
    instruments: tuple[Instrument, ...]
    breach_notice: Applied | None     # duty, to whom, deadline
    breach_form: Applied | None       # the form the notice is made on (may be the notice)
    incident_duty: Applied | None     # information system incident: to whom
    incident_notice: Applied | None   # information system incident: 24 h / 72 h

    def domain(self, name: str) -> tuple[Instrument, ...]:
        return tuple(i for i in self.instruments if i.domain == name)

    @property
    def verified(self) -> bool:
        applied = (self.breach_notice, self.breach_form, self.incident_duty,
                   self.incident_notice)
        return all(i.verified for i in self.instruments) and \
            all(a.verified for a in applied if a is not None)

    def follows(self, lang: Lang) -> str:
        """Which law the report follows, as one sentence."""
        refs = "; ".join(i.reference(lang) for i in self.instruments)
        if lang == "vi":
            when = vi_date(self.at)
            return (f"Căn cứ pháp lý áp dụng {when}: {refs}." if refs else
                    f"Không có văn bản nào trong danh mục áp dụng {when}.")
        return (f"Law applied on {en_date(self.at)}: {refs}." if refs else
                f"No listed instrument applies on {en_date(self.at)}.")

    def breach_form_citation(self, lang: Lang) -> str | None:
        """"Theo Mẫu số 03, Nghị định số 13/2023/NĐ-CP ngày 17 tháng 4 năm 2023 của Chính
        phủ" (the form first; None when no form applies on that date)."""
        if self.breach_form is None:
            return None
        p, inst = self.breach_form.provision, self.breach_form.instrument
        mark = "" if p.verified else UNVERIFIED[lang]
        if lang == "vi":
            return f"Theo Mẫu số {p.form}{mark}, {inst.reference('vi')}"
        return f"Following Form No. {p.form}{mark}, {inst.reference('en')}"

    def breach_notice_citation(self, lang: Lang) -> str | None:
        """The duty: article, to whom, within how many hours of what."""
        a = self.breach_notice
        if a is None or a.provision.deadline_hours is None:
            return None
        p, hours = a.provision, a.provision.deadline_hours
        if lang == "vi":
            since = ("sau khi xảy ra hành vi vi phạm" if p.clock == "occurrence"
                     else "kể từ khi phát hiện hành vi vi phạm")
            to = f" cho {p.to_vi}" if p.to_vi else ""
            return f"{a.article('vi')}: thông báo{to} chậm nhất {hours} giờ {since}"
        since = ("after the violation occurred" if p.clock == "occurrence"
                 else "of detecting the violation")
        to = f" {p.to_en}" if p.to_en else ""
        return f"{a.article('en')}: notify{to} within {hours} hours {since}"

    def incident_citation(self, lang: Lang) -> str | None:
        """The information-system incident notice: 24 h first notice, 72 h report."""
        a = self.incident_notice
        if a is None:
            return None
        p = a.provision
        if lang == "vi":
            return (f"{a.article('vi')}: thông báo ban đầu sự cố nghiêm trọng trong "
                    f"{p.notice_hours} giờ, báo cáo sự cố cho {p.to_vi} trong "
                    f"{p.report_hours} giờ kể từ khi phát hiện")
        return (f"{a.article('en')}: first notice of a serious incident within "
                f"{p.notice_hours} hours, incident report to {p.to_en} within "
                f"{p.report_hours} hours of detection")


def vi_date(d: date) -> str:
    """"ngày 17 tháng 4 năm 2023": a day below 10 and the months 1 and 2 take a leading
    zero (Decree 30/2020/NĐ-CP, Phụ lục I)."""
    month = f"{d.month:02d}" if d.month < 3 else str(d.month)
    return f"ngày {d.day:02d} tháng {month} năm {d.year}"


def en_date(d: date) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def parse(text: str) -> tuple[Instrument, ...]:
    """The instruments of a ``law.toml`` text, checked for consistency."""
    try:
        doc = msgspec.convert(tomllib.loads(text), _File)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as e:
        raise ConfigError(f"the legal references (law.toml) are invalid: {e}") from None
    if doc.schema != 1:
        raise ConfigError(f"law.toml has schema {doc.schema}; this secops reads schema 1")
    _check(doc.instrument)
    return doc.instrument


def _check(instruments: tuple[Instrument, ...]) -> None:
    by_id = {i.id: i for i in instruments}
    if len(by_id) != len(instruments):
        raise ConfigError("law.toml lists an instrument id twice")
    for inst in instruments:
        problem = _problem(inst, by_id)
        if problem:
            raise ConfigError(f"law.toml, instrument {inst.id}: {problem}")
    boundaries = {i.effective for i in instruments} | {i.until for i in instruments if i.until}
    for day in sorted(boundaries):
        for topic in ("breach_notice", "breach_form", "incident_duty", "incident_notice"):
            if len(_providing(instruments, day, topic)) > 1:
                raise ConfigError(f"law.toml: two instruments in force on {day} give {topic}")


def _problem(inst: Instrument, by_id: dict[str, Instrument]) -> str:
    if not inst.sources or not inst.checked:
        return "no source or nothing checked"
    if inst.signed > inst.effective or (inst.until and inst.until <= inst.effective):
        return "its dates are out of order"
    if not inst.verified and not inst.missing:
        return "verified = false needs `missing`: what could not be confirmed"
    if inst.replaced_by and (inst.replaced_by not in by_id
                             or by_id[inst.replaced_by].effective != inst.until):
        return "replaced_by must name an instrument that takes effect on its `until`"
    if any(r not in by_id or inst.id != by_id[r].replaced_by for r in inst.replaces):
        return "replaces must name instruments that say they are replaced by it"
    for p in inst.provision:
        if not p.sources or (not p.verified and not p.missing):
            return f"provision {p.topic}: needs sources, and `missing` when not verified"
        if p.topic in ("breach_notice", "breach_form") and inst.domain != "personal_data":
            return f"provision {p.topic} belongs to a personal-data instrument"
    return ""


def _providing(instruments: tuple[Instrument, ...], at: date, topic: str) -> list[Applied]:
    return [Applied(i, p) for i in instruments if i.applies(at)
            for p in i.provision if p.topic == topic]


def in_force(instruments: tuple[Instrument, ...], at: date) -> Regime:
    """The regime on ``at``: laws before decrees, in the order of the file."""
    def one(topic: str) -> Applied | None:
        found = _providing(instruments, at, topic)
        return found[0] if found else None

    current = sorted((i for i in instruments if i.applies(at)),
                     key=lambda i: (i.domain != "personal_data", i.kind != "law"))
    notice = one("breach_notice")
    form = one("breach_form") or (notice if notice and notice.provision.form else None)
    return Regime(at, tuple(current), notice, form, one("incident_duty"),
                  one("incident_notice"))


@functools.cache
def instruments() -> tuple[Instrument, ...]:
    """The packaged ``secops/reports/law.toml``, parsed once."""
    text = resources.files("secops.reports").joinpath("law.toml").read_text(encoding="utf-8")
    return parse(text)


def law_in_force(at: date) -> Regime:
    """Which instruments apply on ``at`` (pass the day the breach or incident was detected,
    in Viet Nam's time): a report of 2025 cites Decree 13/2023/NĐ-CP, one of 2026 the Law
    on Personal Data Protection and Decree 356/2025/NĐ-CP."""
    return in_force(instruments(), at)
