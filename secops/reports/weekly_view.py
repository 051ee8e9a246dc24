"""The weekly report's page: the data ``weekly.build`` gathered, as a reader wants it (pure).

Numbers, durations and times per language (``paper``: decimal comma in Vietnamese, the
server's zone), every code as its word (``i18n``), the office-document layout of Decree
30/2020/NĐ-CP (``templates/paper.html.j2``), and a status that has nothing behind it said as
such: "not configured", "nothing to check", never "passed".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from secops.reports import charts, paper
from secops.reports.i18n import Words, words

NBSP = paper.NBSP


def _t(lang: str) -> dict[str, str]:
    """The weekly report's own words (secops/reports/words/<lang>.toml, [weekly])."""
    return words(lang).table("weekly")


def fmt_percent(x: float | None, lang: str) -> str:
    return paper.percent(x, lang)


def fmt_duration(seconds: float | None, lang: str) -> str:
    """``42,5 giây``, ``5 phút 30 giây``, ``3 giờ 5 phút``, ``2 ngày 4 giờ`` (en: s, min,
    h, d)."""
    return paper.duration(seconds, lang)


def fmt_bytes(n: float | None, lang: str) -> str:
    return paper.size(n, lang)


def fmt_time(iso: str | None, lang: str) -> str:
    return paper.local_time(iso, lang)


def fingerprint_groups(fpr: str) -> str:
    return " ".join(fpr[i:i + 4] for i in range(0, len(fpr), 4))


def _day_labels(doc: dict[str, Any], lang: str) -> list[str]:
    names = _t(lang)["weekdays"].split("|")
    return [f"{names[i]} {date.fromisoformat(d):%d/%m}" for i, d in enumerate(doc["week"]["days"])]


def _status(ok: bool | None) -> str:
    return "na" if ok is None else "good" if ok else "bad"


# -- sections -----------------------------------------------------------------------------------

def _reasons(reasons: dict[str, int] | None, lang: str) -> str:
    t = _t(lang)
    if reasons is None:
        return ""
    parts = [t["reason_item"].format(n=n, what=t[f"r_{k}"]) for k, n in reasons.items() if n]
    return ", ".join(parts)


def _backup_rows(doc: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    t, w = _t(lang), words(lang)
    rows = []
    for b in doc["backups"]["targets"]:
        if b["failing_since"]:
            state = t["failing_since"].format(time=fmt_time(b["failing_since"], lang),
                                              error=w.system(b["last_error"] or ""))
        elif b["last_ok_time"]:
            state = t["healthy"].format(time=fmt_time(b["last_ok_time"], lang))
        else:
            state = t["never"]
        source = t["source_repo"].format(reasons=_reasons(b.get("reasons"), lang) or t["none"])
        if b.get("source") == "record":
            source = t["source_record"]
        rpo = b["rpo"]
        rows.append({"target": b["target"], "ok": b["ok"], "failed": b["failed"],
                     "rate": fmt_percent(b["success_rate"], lang),
                     "rpo_max": fmt_duration(rpo["max_s"], lang),
                     "rpo_median": fmt_duration(rpo["median_s"], lang),
                     "rpo_p95": fmt_duration(rpo["p95_s"], lang), "state": state,
                     "source": source, "record": b.get("source") == "record",
                     "bad": bool(b["failing_since"]) or state == t["never"]})
    return rows


def _event_row(e: dict[str, Any], lang: str) -> dict[str, Any]:
    t, w = _t(lang), words(lang)
    score = f" ({t['score']} {paper.number(float(e['score']), lang)})" \
        if isinstance(e.get("score"), int | float) else ""
    return {"time": fmt_time(e["time"], lang), "kind": w.event(e["kind"]),
            "severity": w.severity(e["severity"]), "files": e["files"],
            "examples": ", ".join(e["paths"]) + score}


def _integrity_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t, w = _t(lang), words(lang)
    i = doc["integrity"]
    held = i.get("containment") or {"counts": {}, "events": []}
    events = [_event_row(e, lang) for e in i["events"]]
    return {"counts": [(w.event(k), n) for k, n in i["counts"].items()], "events": events,
            "more": t["more"].format(n=i["total"] - len(events)) if i["total"] > len(events)
            else "", "baseline": i["baseline_files"], "canaries": i["canaries"],
            "last_verify": fmt_time(i["last_verify"], lang),
            "containment": [(w.event(k), n) for k, n in held["counts"].items()],
            "containment_events": [_event_row(e, lang) for e in held["events"]]}


def _service_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """Interruptions of protection: each event, and what it was about (target, error)."""
    t, w = _t(lang), words(lang)
    sv = doc.get("service") or {"counts": {}, "total": 0, "events": []}
    rows = []
    for e in sv["events"]:
        about = "; ".join(str(x) for x in (e.get("target"), e.get("error")) if x)
        if len(about) > 160:
            about = about[:157] + "..."
        rows.append({"time": fmt_time(e["time"], lang), "kind": w.event(e["kind"]),
                     "severity": w.severity(e["severity"]), "about": about})
    return {"events": rows, "total": sv["total"],
            "counts": [(w.event(k), n) for k, n in sv["counts"].items() if n],
            "more": t["more"].format(n=sv["total"] - len(rows)) if sv["total"] > len(rows)
            else ""}


def _review_row(doc: dict[str, Any], lang: str) -> dict[str, str]:
    t = _t(lang)
    rv = doc.get("review") or {"time": None}
    if not rv.get("time") or rv.get("score") is None:
        return {"label": t["sum_review"], "status": "na", "text": t["sum_review_none"]}
    high = rv["failed_high"]
    text = t["sum_review_text"].format(score=rv["score"], n=len(high), failed=rv["failed"],
                                       time=fmt_time(rv["time"], lang))
    if high:
        text += f" ({', '.join(high[:8])}{', ...' if len(high) > 8 else ''})"
    return {"label": t["sum_review"], "status": _status(not high), "text": text}


def _service_summary(v: dict[str, Any], lang: str) -> str:
    t = _t(lang)
    sv = v["service"]
    if not sv["total"]:
        return t["sum_service_none"]
    kinds = ", ".join(t["reason_item"].format(n=n, what=label) for label, n in sv["counts"])
    return t["sum_service_text"].format(n=sv["total"]) + f" ({kinds})"


def _incident_rows(doc: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    t, w = _t(lang), words(lang)
    return [{"id": x["id"], "kind": w.event(x["kind"]), "severity": w.severity(x["severity"]),
             "state": w.state(x["state"]), "opened": fmt_time(x["opened"], lang),
             "closed": fmt_time(x["closed"], lang), "playbook": w.playbook(x["playbook"]),
             "new": t["new"] if x["new"] else "", "open": x["state"] != "closed"}
            for x in doc["incidents"]["items"]]


def _drill_snapshot(x: dict[str, Any], lang: str) -> tuple[str, bool]:
    """The snapshot as the table names it: its id now (8 hex), or that it is gone; and
    whether the id changed since the drill."""
    current = str(x.get("current_id") or x["snapshot_id"])
    if x.get("exists") is False:
        return _t(lang)["snapshot_gone"], False
    return current[:8], current != x["snapshot_id"]


def _drill_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = _t(lang)
    d = doc["drills"]
    rows = []
    for x in d["items"]:
        snap, moved = _drill_snapshot(x, lang)
        rows.append({"time": fmt_time(x["time"], lang), "target": x["target"],
                     "snapshot": snap, "moved": moved, "ok": x["ok"],
                     "result": t["passed"] if x["ok"] else t["not_passed"],
                     "files": x["files_checked"], "rto": fmt_duration(x["rto_s"], lang),
                     "rpo": fmt_duration(x["rpo_s"], lang)})
    text = t["drills_text"].format(passed=d["passed"], count=d["count"],
                                   max=fmt_duration(d["rto_max_s"], lang),
                                   median=fmt_duration(d["rto_median_s"], lang)) \
        if d["count"] else t["no_drills"]
    return {"rows": rows, "text": text, "ok": d["count"] > 0 and d["passed"] == d["count"],
            "moved_note": t["drill_moved_note"] if any(r["moved"] for r in rows) else ""}


def _audit_text(a: dict[str, Any], w: Words) -> str:
    t = w.table("weekly")
    if a.get("skipped"):
        return t["audit_empty"]
    if a["ok"]:
        return t["audit_ok"]
    code, detail = str(a.get("problem") or ""), str(a.get("detail") or "")
    if code == "unavailable":                     # could not be checked: say why, once
        return t["audit_unchecked"].format(problem=w.system(detail) if detail
                                           else w.term("audit_problem", code))
    problem = w.term("audit_problem", code) if w.has("audit_problem", code) else \
        w.system(code or detail)
    if detail and w.has("audit_problem", code):
        problem += f": {w.system(detail)}"
    if a.get("first_bad_seq") is None:
        return t["audit_unchecked"].format(problem=problem)
    return t["audit_bad"].format(seq=a["first_bad_seq"], problem=problem)


def _audit_ok(a: dict[str, Any]) -> bool | None:
    """True: checked and intact; None: nothing to check yet; False: a problem."""
    if a.get("skipped"):
        return None
    return bool(a["ok"]) and not a.get("tampered_events")


CHECKED = ("ok", "rotated")          # a sealed file that was compared with its seal


def _log_file(f: dict[str, Any], w: Words) -> dict[str, Any]:
    bad = f["status"] not in (*CHECKED, "unsealed", "missing")
    text = w.term("log_status", f["status"])
    return {"path": f["path"], "bad": bad,
            "cls": "bad" if bad else "good" if f["status"] in CHECKED else "na",
            "status": w.table("weekly")["ls_problem"].format(status=text) if bad else text}


def _journal_text(j: dict[str, Any] | None, lang: str) -> tuple[str, bool | None]:
    t, w = _t(lang), words(lang)
    if j is None:
        return t["not_configured"], None
    if not j["ran"]:
        return t["journal_not_run"].format(detail=w.system(j["detail"])), \
            None if j["ok"] else False
    when = f" ({fmt_time(j['time'], lang)})" if j.get("time") else ""
    if not j["ok"] or j["failed"]:
        return t["journal_bad"].format(passed=j["passed"], failed=j["failed"]) + when, False
    if not j["passed"]:
        return t["journal_nothing"] + when, None
    return t["journal_ok"].format(passed=j["passed"], failed=j["failed"]) + when, True


def _logs_ok(lg: dict[str, Any], files: list[dict[str, Any]], journal_ok: bool | None
             ) -> bool | None:
    """The system logs: False on any problem, None when nothing was checked (sealing not
    configured, or no sealed file to compare), True when something was and all held."""
    if lg["tampered_events"] or lg["checks_failed"] or lg["error"] or journal_ok is False \
            or any(f["bad"] for f in files):
        return False
    checked = lg["seal_configured"] and any(f["status"] in CHECKED for f in lg["files"])
    if not checked and not journal_ok:
        return None
    return True


def _logs_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t, w = _t(lang), words(lang)
    a, lg = doc["audit"], doc["logs"]
    files = [_log_file(f, w) for f in lg["files"]]
    journal, journal_ok = _journal_text(lg["journal"], lang)
    checks = t["checks_text"].format(n=lg["checks"], bad=lg["checks_failed"],
                                     last=fmt_time(lg["last_check"], lang))
    logs_ok = _logs_ok(lg, files, journal_ok)
    if not lg["seal_configured"]:
        seal = t["seal_off"]
    elif not lg["files"] and not lg["error"]:
        seal = t["nothing_to_check"]
    else:
        seal = ""
    checked = sum(f["status"] in CHECKED for f in lg["files"])
    if logs_ok is None:
        logs_text = t["seal_off_short"] if not lg["seal_configured"] else t["nothing_to_check"]
    elif logs_ok:
        logs_text = t["sum_logs_ok"].format(n=checked)
    else:
        logs_text = t["bad"]
    audit_ok = _audit_ok(a)
    audit_sum = t["sum_audit_ok"].format(records=a.get("records")) if audit_ok else \
        t["audit_empty"] if audit_ok is None else t["bad"]
    return {"audit_text": _audit_text(a, w), "audit_ok": audit_ok, "audit_sum": audit_sum,
            "records": a.get("records"), "checkpoints": a.get("checkpoints_verified"),
            "audit_tampered": a["tampered_events"], "logs_tampered": lg["tampered_events"],
            "seal_configured": lg["seal_configured"], "seal_text": seal,
            "seal_error": t["unavailable"].format(error=w.system(lg["error"]))
            if lg["error"] else None,
            "files": files, "checks": checks, "journal": journal,
            "journal_class": _status(journal_ok), "logs_ok": logs_ok, "logs_text": logs_text}


def _storage_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = _t(lang)
    s = doc["storage"]
    repos = [{"target": x["target"], "ok": x["ok"],
              "size": fmt_bytes(x.get("total_size"), lang) if x["ok"] else
              t["unavailable"].format(error=words(lang).system(str(x["error"]))),
              "snapshots": t["dash"] if x.get("snapshots") is None else x["snapshots"]}
             for x in s["targets"]]
    disks = []
    for d in s["disks"]:
        label = t["disk_state"] if d["label"] == "state_dir" else \
            t["disk_target"].format(name=d["label"])
        if d["ok"]:
            pct = 100.0 * d["free"] / d["total"] if d["total"] else 0.0
            disks.append({"label": label, "path": d["path"], "ok": True,
                          "size": fmt_bytes(d["total"], lang),
                          "used": fmt_bytes(d["used"], lang),
                          "free": f"{fmt_bytes(d['free'], lang)} ({fmt_percent(pct, lang)})",
                          "low": pct < 10})
        else:
            disks.append({"label": label, "path": d["path"], "ok": False,
                          "size": t["unavailable"].format(
                              error=words(lang).system(str(d["error"]))), "used": "",
                          "free": "", "low": True})
    return {"repos": repos, "disks": disks}


def _integrity_summary(doc: dict[str, Any], lang: str) -> str:
    t, w = _t(lang), words(lang)
    i = doc["integrity"]
    kinds = ", ".join(t["reason_item"].format(n=n, what=w.event(k))
                      for k, n in i["counts"].items() if n)
    text = t["sum_integrity_text"].format(n=i["total"]) + (f" ({kinds})" if kinds else "")
    held = (i.get("containment") or {}).get("counts") or {}
    if any(held.values()):
        text += t["sum_containment"].format(frozen=held.get("integrity.frozen", 0),
                                            unfrozen=held.get("integrity.unfrozen", 0))
    return text


def _summary(doc: dict[str, Any], lang: str, v: dict[str, Any]) -> list[dict[str, str]]:
    t = _t(lang)
    bt = doc["backups"]["targets"]
    ok, failed = sum(b["ok"] for b in bt), sum(b["failed"] for b in bt)
    rpo_max = max((b["rpo"]["max_s"] for b in bt if b["rpo"]["max_s"] is not None), default=None)
    inc = doc["incidents"]
    open_n = sum(i["state"] != "closed" for i in inc["items"])
    st = doc["storage"]
    size = sum(x.get("total_size", 0) for x in st["targets"] if x["ok"])
    free = min((d["free"] for d in st["disks"] if d["ok"]), default=None)
    backups_text = t["sum_backups_text"].format(
        ok=ok, failed=failed, rate=fmt_percent(success_rate(ok, failed), lang))
    recorded = [b["target"] for b in bt if b.get("source") == "record"]
    if recorded:
        backups_text += t["sum_backups_record"].format(targets=", ".join(recorded))
    lg = v["logs"]
    return [
        {"label": t["sum_backups"],
         "status": _status(failed == 0 and all(b["ok"] for b in bt) and not recorded),
         "text": backups_text},
        {"label": t["sum_rpo"], "status": "na", "text": fmt_duration(rpo_max, lang)},
        {"label": t["sum_integrity"], "status": _status(doc["integrity"]["total"] == 0),
         "text": _integrity_summary(doc, lang)},
        {"label": t["sum_service"], "status": _status(v["service"]["total"] == 0),
         "text": _service_summary(v, lang)},
        _review_row(doc, lang),
        {"label": t["sum_incidents"], "status": _status(open_n == 0),
         "text": t["sum_incidents_text"].format(n=len(inc["items"]), new=inc["opened"],
                                                open=open_n)},
        {"label": t["sum_drills"], "status": _status(v["drills"]["ok"]),
         "text": v["drills"]["text"]},
        {"label": t["sum_audit"], "status": _status(lg["audit_ok"]), "text": lg["audit_sum"]},
        {"label": t["sum_syslogs"], "status": _status(lg["logs_ok"]), "text": lg["logs_text"]},
        {"label": t["sum_storage"],
         "status": _status(all(x["ok"] for x in st["targets"]) and not any(
             d["low"] for d in v["storage"]["disks"])),
         "text": t["sum_storage_text"].format(size=fmt_bytes(size, lang),
                                              n=sum(x["ok"] for x in st["targets"]),
                                              total=len(st["targets"]),
                                              free=fmt_bytes(free, lang))},
    ]


def success_rate(ok: int, failed: int) -> float | None:
    return round(100.0 * ok / (ok + failed), 1) if ok + failed else None


def _revision(doc: dict[str, Any], lang: str) -> str:
    t = _t(lang)
    prev = doc.get("previous")
    if not prev:
        return ""
    delivered = t["delivered_at"].format(time=paper.local_time(prev["delivered"], lang)) \
        if prev.get("delivered") else ""
    return t["revision_note"].format(n=doc.get("revision", prev["revision"] + 1),
                                     prev=prev["revision"], pdf=prev["pdf"],
                                     time=paper.local_time(prev.get("generated"), lang),
                                     delivered=delivered)


def view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """Everything the template shows, formatted for ``lang`` (times in the local zone)."""
    t = _t(lang)
    days = [date.fromisoformat(d) for d in doc["week"]["days"]]
    generated = datetime.fromisoformat(doc["generated"].replace("Z", "+00:00")).astimezone()
    offset = doc["week"]["utc_offset"]
    fpr = doc.get("signing_key")
    files = doc.get("files", {})
    office = doc["office"]["name"]
    v: dict[str, Any] = {
        "office": office, "week": doc["week"]["label"], "complete": doc["week"]["complete"],
        "masthead": paper.masthead(office, generated.date(), lang,
                                   str(doc["office"].get("place") or "")),
        "signer": paper.signer(office, lang),
        "period": t["period"].format(week=doc["week"]["label"],
                                     start=paper.local_date(days[0], lang),
                                     end=paper.local_date(days[-1], lang)),
        "generated": paper.local_time(doc["generated"], lang, zone=True),
        "day_labels": _day_labels(doc, lang), "revision": _revision(doc, lang),
        "method": t["method"].format(offset=f"{offset[:3]}:{offset[3:]}"),
        "backups": _backup_rows(doc, lang), "integrity": _integrity_view(doc, lang),
        "service": _service_view(doc, lang),
        "incidents": _incident_rows(doc, lang), "drills": _drill_view(doc, lang),
        "logs": _logs_view(doc, lang), "storage": _storage_view(doc, lang),
        "fingerprint": fingerprint_groups(fpr) if fpr else t["unsigned"],
        "digital_text": t["digital_text"].format(pdf=files.get("pdf", ""), office=office),
        "verify_hint": t["verify_hint"].format(sig=files.get("signature", "")),
        "verify_cmd": f"gpg --verify {files.get('signature', '')} {files.get('pdf', '')}",
    }
    v["summary"] = _summary(doc, lang, v)
    return v


def mail_text(doc: dict[str, Any], lang: str) -> tuple[str, str]:
    """Subject and body of the mail that carries the PDF and its signature."""
    t = _t(lang)
    v = view(doc, lang)
    days = [date.fromisoformat(d) for d in doc["week"]["days"]]
    subject = t["mail_subject"].format(week=v["week"], office=v["office"])
    lines = [t["mail_intro"].format(office=v["office"], week=v["week"],
                                    start=paper.local_date(days[0], lang),
                                    end=paper.local_date(days[-1], lang)),
             "", *(f"- {s['label']}: {s['text']}" for s in v["summary"]), "",
             *([v["revision"], ""] if v["revision"] else []),
             t["mail_sig"].format(fpr=v["fingerprint"], sig=doc["files"]["signature"],
                                  pdf=doc["files"]["pdf"])]
    return subject, "\n".join(lines) + "\n"


def pdf_meta(doc: dict[str, Any], lang: str) -> Any:
    """The PDF's document information: title, the office as author, when it was made."""
    from secops.reports.pdf import PdfMeta

    t = _t(lang)
    days = [date.fromisoformat(d) for d in doc["week"]["days"]]
    generated = datetime.fromisoformat(doc["generated"].replace("Z", "+00:00")).astimezone()
    return PdfMeta(title=f"{t['title']}{paper.DASH}{doc['week']['label']}",
                   author=doc["office"]["name"], created=generated,
                   subject=t["period"].format(week=doc["week"]["label"],
                                              start=paper.local_date(days[0], lang),
                                              end=paper.local_date(days[-1], lang)),
                   keywords=("secops", "weekly", doc["office"]["code"], doc["week"]["label"]),
                   lang=lang)


# -- rendering ----------------------------------------------------------------------------------

def render_html(doc: dict[str, Any], lang: str) -> str:
    """The self-contained printable page (A4), charts inline, in ``lang`` ("vi" or "en")."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("secops.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    v = view(doc, lang)
    t = _t(lang)
    days = v["day_labels"]
    bars = charts.backups_per_day(
        days, [(b["target"], [tuple(x) for x in b["per_day"]])
               for b in doc["backups"]["targets"]],
        {"title": t["chart_backups"], "ok": t["ok"], "failed": t["failed"],
         "y": t["chart_backups_y"], "target": t["target"], "none": t["none"]})
    rpo = charts.rpo_histogram(
        t["rpo_bins"].split("|"),
        [(b["target"], b["rpo"]["bins"]) for b in doc["backups"]["targets"]],
        {"title": t["chart_rpo"], "x": t["chart_rpo_x"], "y": t["chart_rpo_y"],
         "none": t["no_gaps"]})
    return env.get_template("weekly.html.j2").render(
        v=v, t=t, pt=words(lang).table("paper"), lang=lang,
        chart_backups=Markup(bars),  # noqa: S704 - escaped in charts.py
        chart_rpo=Markup(rpo))  # noqa: S704
