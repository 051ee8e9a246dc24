"""The incident report's document (``incident_report.compose``) as sections, then as a
self-contained printable HTML page (A4, the PDF's source) and as Markdown: the same sections
in both, in the report's language. Pure.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from secops.clock import parse_iso
from secops.reports.i18n import Words, lang_of, words
from secops.reports.incident_report import local, span

Section = dict[str, Any]
PATHS_SHOWN = 20
# what never wraps on the printed page: incident ids (and the bundle names that start with
# one), the key files the police are handed
UNBREAKABLE = re.compile(r"INC-[A-Za-z0-9_-]+?-\d{8}-\d{3,}(?:-\d{8}T\d{6}Z(?:-\d+)?"
                         r"\.tar\.gz(?:\.gpg)?(?:\.asc)?)?|\b(?:office-gpg\.asc|"
                         r"office-ed25519\.pub|audit-root\.pub)\b")


def zone(doc: dict[str, Any]) -> str:
    """The report's time zone, ``UTC+07:00``: table cells give local times without it,
    their column's heading names it once."""
    dt = datetime.fromtimestamp(parse_iso(doc["generated"]) or 0.0).astimezone()
    off = dt.strftime("%z") or "+0000"
    return f"UTC{off[:3]}:{off[3:5]}"


def cell_time(text: str | None, tz: str) -> str:
    """A table cell's local time: without the zone when it is the heading's."""
    full = local(text)
    return full.removesuffix(f" ({tz})")


def sections(doc: dict[str, Any], lang: str) -> list[Section]:
    """The report as sections (title, fields, items, table, pre), shared by HTML and MD."""
    wd = words(lang)
    w = wd.table("incident")
    b, o = doc["breach"], doc["office"]
    inc = doc["incident"]
    unknown, nd, none = wd.term("common", "unknown"), wd.term("common", "not_declared"), \
        wd.term("common", "none")
    shown = b["paths"][:PATHS_SHOWN]
    more = len(b["paths"]) - len(shown)
    paths = "; ".join(shown) + (f" {w['more_paths'].format(n=more)}" if more else "")
    general = [(w["incident"], inc["id"]), (w["office"], f"{o['name']} ({o['code']})"),
               (w["kind"], wd.event(inc["kind"])), (w["severity"], wd.severity(inc["severity"])),
               (w["state"], wd.state(inc["state"])), (w["playbook"], wd.playbook(inc["playbook"])),
               (w["opened"], local(inc["opened"]))]
    if inc.get("closed"):
        general.append((w["closed"], local(inc["closed"])))
    general.append((w["generated"], local(doc["generated"])))
    tz = zone(doc)
    when = f"{w['time']} ({tz})"
    return [
        _sec(w["general"], 2, fields=general),
        _sec(w["s_breach"], 2),
        _sec(w["s_time_place"], 3, fields=[
            (w["event_time"], local(b["event_time"]) or unknown),
            (w["first_seen"], local(b["first_seen"]) or unknown),
            (w["opened"], local(inc["opened"])),
            (w["detected_by"], wd.actor(b["source"]) if b["source"] else unknown),
            (w["office"], o["name"]), (w["address"], o["address"] or nd),
            (w["host"], doc["host"]), (w["paths"], paths or unknown)]),
        _sec(w["s_act"], 3, items=[b["act"]] + [
            f"{w['changes']}: {c['path']} {wd.change(c['kind'])}" for c in b["changes"]]),
        _sec(w["s_parties"], 3, fields=[
            (w["controller"], f"{o['name']}, {o['address'] or nd}"),
            (w["suspects"], "; ".join(b["parties"]["suspects"]) or unknown),
            (w["logged_in"], "; ".join(b["parties"]["logged_in"]) or none),
            (w["handlers"], "; ".join(wd.actor(h) for h in b["parties"]["handlers"]) or none),
            (w["recipients"], "; ".join(doc["law"]["recipients"])
             or wd.term("law", "no_recipients"))]),
        _data_section(doc, wd),
        _sec(w["s_contact"], 2, fields=[
            (w["contact_name"], o["contact_name"] or nd),
            (w["contact_title"], o["contact_title"] or nd),
            (w["contact_phone"], o["contact_phone"] or nd),
            (w["contact_email"], o["contact_email"] or nd)]),
        _sec(w["s_consequences"], 2, items=b["consequences"]),
        *_measures_section(doc, wd),
        *_deadline_sections(doc, wd),
        _detection_section(doc, wd),
        _containment_section(doc, wd),
        *_recovery_sections(doc, wd),
        _sec(w["s_lessons"], 2, items=doc["lessons"], blanks=[
            w["root_cause"], w["went_well"], w["improve"]]),
        _sec(w["s_timeline"], 2, table=([when, w["what"], w["detail"]], [
            [cell_time(t["time"], tz), t["label"], t["detail"]] for t in doc["timeline"]])),
        _sec(w["s_evidence"], 2,
             items=[w["custody_note"] if doc["evidence"] else w["no_evidence"]], table=(
            [w["seq"], w["name"], w["size"], "SHA-256"],
            [[str(e["seq"]), e["name"], str(e["size"]), e["sha256"]]
             for e in doc["evidence"]])),
        _audit_section(doc, wd),
    ]


def _sec(title: str, level: int, *, fields: list[tuple[str, str]] | None = None,
         items: list[str] | None = None, table: tuple[list[str], list[list[str]]] | None = None,
         pre: list[tuple[str, str]] | None = None, blanks: list[str] | None = None,
         css: str = "") -> Section:
    return {"title": title, "level": level, "fields": fields or [], "items": items or [],
            "head": table[0] if table and table[1] else [],
            "rows": table[1] if table else [], "pre": pre or [], "blanks": blanks or [],
            "css": css}


def _data_section(doc: dict[str, Any], wd: Words) -> Section:
    """1.4: the judgement (the same in both languages), the personal files, their records."""
    w, unknown = wd.table("incident"), wd.term("common", "unknown")
    pd = doc["breach"]["personal_data"]
    others = [w[key].format(n=n) for key, n in (("pd_others_none", pd["not_personal"]),
                                                ("pd_others_und", pd["undetermined"])) if n]
    if pd["judgement"] != "personal":
        return _sec(w["s_data"], 3, items=[w[f"pd_{pd['judgement']}"]])
    rows = []
    for v in pd["files"]:
        src = w["src_snapshot"].format(id=v["snapshot"]) if v["source"] == "snapshot" else \
            w["src_live"] if v["source"] == "live" else \
            unknown if v["countable"] else w["not_countable"]
        rows.append([v["path"], unknown if v["records"] is None else str(v["records"]),
                     ", ".join(v["fields"]) or unknown, src])
    total = pd["total_records"]
    count = w["total_v"].format(n=total) if total is not None else unknown
    return _sec(w["s_data"], 3, items=[w["pd_personal"], *others, f"{w['total']}: {count}"],
                table=([w["file"], w["records"], w["fields"], w["source"]], rows))


def _measure(t: dict[str, Any], wd: Words) -> str:
    w = wd.table("incident")
    if t.get("record"):   # an act of a person or the service: who did it
        what = wd.record(t["record"]) + (f" {wd.quoted(t['step'])}" if t.get("step") else "")
        return w["measure_record"].format(time=local(t["time"]), what=what,
                                          by=wd.actor(t.get("by")))
    result = wd.outcome("already_frozen") if t.get("already") and t["what"] == "freeze" \
        else wd.result(t["ok"], t["error"])
    return w["measure_item"].format(time=local(t["time"]), what=wd.action(t["what"], t["step"]),
                                    result=result)


def num(x: object, lang: str, digits: int | None = None) -> str:
    """A number as the reader writes it (Vietnamese: a decimal comma)."""
    text = f"{x:.{digits}f}" if digits is not None and isinstance(x, int | float) else str(x)
    return text.replace(".", ",") if lang == "vi" else text


def _measures_section(doc: dict[str, Any], wd: Words) -> list[Section]:
    w = wd.table("incident")
    taken = [_measure(t, wd) for t in doc["measures"]["taken"]]
    return [_sec(w["s_measures"], 2),
            _sec(f"4.1. {w['taken']}", 3, items=taken or [wd.term("common", "none")]),
            _sec(f"4.2. {w['planned']}", 3, items=doc["measures"]["planned"])]


def _deadline_sections(doc: dict[str, Any], wd: Words) -> list[Section]:
    """5: the notice the law in force asks for: its basis, from when its hours count (the
    law's clock, said in the label), the deadline, and each notice recorded."""
    w, law = wd.table("incident"), doc["law"]
    d = doc["deadline"]
    status = d["status"]
    first = d["notices"][0] if d["notices"] else None
    if status in ("notified", "notified-late"):
        text = w["st_notified" if status == "notified" else "st_notified_late"].format(
            at=local(first["at"]) if first else "")
    elif status == "pending":
        text = w["st_pending"].format(left=span(d["seconds_left"], wd.lang))
    elif status == "overdue":
        text = w["st_overdue"].format(late=span(d["seconds_left"], wd.lang))
    else:
        text = w["st_no_deadline"]
    fields = [(w["basis"], law["notice"] or wd.term("law", "no_notice"))]
    if d["deadline"]:
        clock = d["clock"]
        fields += [(w[f"since_{clock}"], local(d["since"])),
                   (w[f"deadline_{clock}"].format(hours=d["hours"]), local(d["deadline"]))]
    fields.append((w["status"], text))
    if law["incident"]:
        fields.append((w["incident_basis"], law["incident"]))
    blanks = [wd.term("law", "delay_reason")] if status in ("overdue", "notified-late") else []
    title = w["s_deadline"].format(hours=d["hours"]) if d["hours"] else w["s_deadline_none"]
    tz = zone(doc)
    rows = [[cell_time(n["at"], tz), n["to"] or w["not_recorded"],
             n["how"] or w["not_recorded"], n["by"] or w["not_recorded"],
             f"{wd.actor(n['actor'])}, {local(n['recorded'])}"] for n in d["notices"]]
    return [_sec(title, 2, fields=fields, blanks=blanks,
                 css="overdue" if status == "overdue" else ""),
            *([_sec(f"5.1. {w['notices']}", 3, table=(
                [f"{w['n_at']} ({tz})", w["n_to"], w["n_how"], w["n_by"], w["n_recorded"]],
                rows))]
              if rows else [])]


def _detection_section(doc: dict[str, Any], wd: Words) -> Section:
    w = wd.table("incident")
    inc, det, source = doc["incident"], doc["detection"], doc["breach"]["source"]
    unknown = wd.term("common", "unknown")
    fields = [(w["kind"], wd.event(inc["kind"])),
              (w["source_kind"], wd.actor(source) if source else unknown),
              (w["severity"], wd.severity(inc["severity"])),
              (w["event_time"], local(doc["breach"]["event_time"]) or unknown),
              (w["evidence_count"], str(det["evidence_count"]))]
    if det["score"] is not None:
        fields.append((w["score"], num(det["score"], wd.lang)))
    return _sec(w["s_detection"], 2, fields=fields, items=[doc["breach"]["act"]],
                pre=[(f"{w['diff']}: {d['path']}", d["diff"]) for d in det["diffs"]])


def _containment_section(doc: dict[str, Any], wd: Words) -> Section:
    w = wd.table("incident")
    c = doc["containment"]
    items = [_measure(t, wd) for t in c["steps"]]
    took = w["to_contain_v"].format(took=span(c["seconds_to_contain"], wd.lang)) \
        if c["seconds_to_contain"] is not None else w["not_contained"]
    pinned = "; ".join(f"{s['target']}: {s['snapshot_id'][:8]}" for s in c["snapshots"])
    closed = doc["incident"]["state"] == "closed"     # unpinned when it was closed
    fields = [(w["pinned_closed" if closed else "pinned"], pinned or wd.term("common", "none")),
              (w["first_seen"], local(c["first_evidence"]))]
    if c["contained_at"]:
        fields.append((w["frozen_at"] if c["frozen_at"] else w["contained_at"],
                       local(c["contained_at"])))
    return _sec(w["s_containment"], 2, items=items, fields=[*fields, (w["to_contain"], took)])


def _recovery_sections(doc: dict[str, Any], wd: Words) -> list[Section]:
    w, none = wd.table("incident"), wd.term("common", "none")
    r = doc["recovery"]
    tz = zone(doc)
    when = f"{w['time']} ({tz})"
    passed, failed = wd.outcome("passed"), wd.outcome("not_passed")
    drills = [[cell_time(d["time"], tz), d["target"], str(d["snapshot_id"])[:8],
               passed if d["ok"] else failed, str(d["files_checked"]),
               num(d["rto_s"], wd.lang, 1)] for d in r["drills"]]
    restores = [[cell_time(x["time"], tz), str(x["target"]), str(x["snapshot"] or "")[:8],
                 w["in_place"] if x["in_place"] else w["scratch"],
                 str(x["safety_snapshot"] or "")[:8] or none, passed if x["ok"] else failed,
                 str(x["files_checked"]), wd.actor(x["by"]) if x["by"] else
                 wd.actor(f"playbook:{doc['incident']['playbook']}/{x['step']}")]
                for x in r["restores"]]
    fields = [(w["state"], wd.state(doc["incident"]["state"]))]
    if r["recovered_at"]:
        fields.append((w["recovered"], local(r["recovered_at"])))
    in_place = [x for x in r["restores"] if x["in_place"] and x["ok"]]
    if in_place:
        fields.append((w["restored_in_place"], local(in_place[-1]["time"])))
    return [
        _sec(w["s_recovery"], 2, fields=fields),
        _sec(f"8.1. {w['restores']}", 3, items=[] if restores else [none], table=(
            [when, w["target"], w["snapshot"], w["restore_how"], w["safety"],
             w["result"], w["files"], w["by"]], restores)),
        _sec(f"8.2. {w['drills']}", 3, items=[] if drills else [none], table=(
            [when, w["target"], w["snapshot"], w["result"], w["files"], w["rto"]],
            drills)),
    ]


def _audit_section(doc: dict[str, Any], wd: Words) -> Section:
    w = wd.table("incident")
    a = doc["audit"]
    if not a:
        return _sec(w["s_audit"], 2, items=[w["audit_none"]])
    check = w["audit_good"] if a.get("ok") else w["audit_bad"].format(
        problem=wd.system(str(a.get("problem"))) if a.get("problem")
        else wd.term("common", "unknown"))
    unknown = wd.term("common", "unknown")
    fields = [
        (w["audit_range"], w["audit_range_v"].format(start=a["start_seq"], end=a["end_seq"],
                                                     n=a["records"])),
        (w["audit_cps"], ", ".join(str(s) for s in a["checkpoint_seqs"])
         or wd.term("common", "none")),
        (w["audit_key"], w["audit_key_v"].format(id=a["key_id"]) if a.get("key_id")
         else unknown)]
    if a.get("root_id"):
        fields.append((w["audit_root"], w["audit_root_v"].format(id=a["root_id"])))
    fields.append((w["audit_check"], check))
    rows = a.get("rows") or []
    items = [w["audit_all"]] if rows else []
    if a.get("rows_left_out"):
        items.append(w["rows_left_out"].format(n=a["rows_left_out"]))
    tz = zone(doc)
    rows = [[seq, cell_time(at, tz), *rest] for seq, at, *rest in rows]
    return _sec(w["s_audit"], 2, fields=fields, items=items, css="compact", table=(
        [w["seq"], f"{w['time']} ({tz})", w["what"], w["by"], w["about"]], rows))


def signature_lines(doc: dict[str, Any], lang: str) -> list[str]:
    w = words(lang).table("incident")
    sig = doc["signature"]
    if not sig["signed"]:
        return [w["unsigned_stmt"]]
    lines = [w["signed_stmt"].format(bundle=sig["bundle"], sig=sig["file"],
                                     fpr=sig["gpg_fingerprint"])]
    if sig["encrypted_to"]:
        lines.append(w["encrypted_stmt"].format(fprs=", ".join(sig["encrypted_to"])))
    return lines


def date_line(doc: dict[str, Any], lang: str) -> str:
    """"Tân Kỳ, ngày 15 tháng 3 năm 2026", as on every report (``paper.date_line``): the
    place from the config or the office's name, the day in local time."""
    from secops.reports import paper

    ts = parse_iso(doc["generated"]) or 0.0
    day = datetime.fromtimestamp(ts).astimezone().date()
    return paper.date_line(str(doc["office"].get("name") or ""), day, lang,
                           str(doc["office"].get("place") or ""))


def law_lines(doc: dict[str, Any], lang: str) -> list[str]:
    """Under the title: the form the report follows, the law applied on the incident's day,
    and, when something is not verified against an official text, a warning."""
    law, wd = doc["law"], words(lang)
    lines = [law["form"] or wd.term("law", "no_form"), law["follows"]]
    return lines + ([] if law["verified"] else [wd.term("law", "unverified_note")])


def render_html(doc: dict[str, Any], lang: str) -> str:
    """The self-contained, printable page (A4), UTF-8, no external resource; its <title>
    and <meta> give the PDF its Title, Author and CreationDate."""
    import jinja2

    from secops.reports.pdf import FONTS

    lang = lang_of(lang)
    env = jinja2.Environment(loader=jinja2.PackageLoader("secops.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["nb"] = nobreak
    return env.get_template("incident.html.j2").render(
        d=doc, w=words(lang).table("incident"), law=law_lines(doc, lang), lang=lang,
        sections=sections(doc, lang), fonts=FONTS, signature=signature_lines(doc, lang),
        date_line=date_line(doc, lang))


def pdf_meta(doc: dict[str, Any], lang: str) -> Any:
    """The PDF's Title, Author (the office), Subject and CreationDate (``pdf.PdfMeta``)."""
    from secops.reports.pdf import PdfMeta

    wd = words(lang)
    w = wd.table("incident")
    created = datetime.fromtimestamp(parse_iso(doc["generated"]) or 0.0).astimezone()
    return PdfMeta(title=f"{w['title']} — {doc['incident']['id']}",
                   author=doc["office"]["name"], created=created,
                   subject=f"{w['incident']}: {doc['incident']['id']}",
                   keywords=(doc["incident"]["id"], wd.event(doc["incident"]["kind"])),
                   lang=lang_of(lang))


def nobreak(text: object) -> Any:
    """``text`` escaped, every incident id in it kept on one line (ids never wrap)."""
    from markupsafe import Markup, escape

    out, last = [], 0
    value = str(text)
    for m in UNBREAKABLE.finditer(value):
        out += [str(escape(value[last:m.start()])),
                f'<span class="nb">{escape(m.group(0))}</span>']
        last = m.end()
    out.append(str(escape(value[last:])))
    return Markup("".join(out))  # noqa: S704 - every piece is escaped above


def render_md(doc: dict[str, Any], lang: str) -> str:
    lang = lang_of(lang)
    w = words(lang).table("incident")
    out = [w["nation"], w["motto"], "", f"# {w['title']}", ""]
    out += [line for text in law_lines(doc, lang) for line in (_md(text), "")]
    out += [_md(date_line(doc, lang)), ""]
    if not doc["signature"]["signed"]:
        out += [f"**{w['draft']}**", ""]
    for s in sections(doc, lang):
        out += ["#" * s["level"] + " " + s["title"], ""]
        out += [f"- **{k}**: {_md(v)}" for k, v in s["fields"]]
        out += [f"- {_md(i)}" for i in s["items"]]
        if s["fields"] or s["items"]:
            out.append("")
        if s["rows"]:
            out += ["| " + " | ".join(s["head"]) + " |", "|" + "---|" * len(s["head"])]
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in s["rows"]]
            out.append("")
        for label, text in s["pre"]:
            fence = _fence(text)  # longer than any run of backticks in the text
            out += [f"{_md(label)}:", "", fence, text, fence, ""]
        out += [f"- **{b}**: ____________________________________________" for b in s["blanks"]]
        if s["blanks"]:
            out.append("")
    out += [f"## {w['s_signatures']}", "",
            f"| {w['preparer']} | {w['approver']} |", "|---|---|",
            f"| {w['sign_hint']} | {w['stamp_hint']} |", "| | |", "| | |",
            "| ______________________ | ______________________ |", "",
            f"**{w['digital']}**: " + " ".join(_md(x) for x in signature_lines(doc, lang)), ""]
    return "\n".join(out)


# Every value from outside (file names, command lines, event details, errors) is text, never
# Markdown or HTML: one line, its special characters backslash-escaped (CommonMark allows it
# for any ASCII punctuation), so `<img ...>`, `[x](javascript:...)` or a `|` stay as written.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~!#])")
_MD_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_MD_ORDERED = re.compile(r"^(\d{1,9})([.)])")  # "- 1. x" or "- - x": a nested list


def _md(text: object) -> str:
    flat = _MD_SPECIAL.sub(r"\\\1", _MD_BREAKS.sub(" ", str(text)).strip())
    flat = _MD_ORDERED.sub(r"\1\\\2", flat)
    return "\\" + flat if flat[:1] in ("+", "-") else flat


def _fence(text: str) -> str:
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)
