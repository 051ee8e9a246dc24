"""The drill report: the signed JSON (what the drill found, for machines and the weekly
report) and the printed report made from it, as an office document (Decree 30/2020/NĐ-CP
layout: national title, place and date, signature block) in HTML and PDF.

Files under ``state_dir/reports/`` (STAMP: the drill's start in UTC, ``20260315T030000Z``):

- ``drill-STAMP-TARGET.json``: the result; ``.json.sig``: its Ed25519 signature (the office
  key, ``secops keys export-public``), the document ``secops report verify-drill`` checks;
- ``drill-STAMP-TARGET.LANG.html`` and ``.LANG.pdf`` (``vi`` or ``en``), the PDF signed the
  same way (``.LANG.pdf.sig``). Printing it again (``secops report drill FILE.json``, e.g.
  in English, or after a pin) writes the next revision, ``drill-STAMP-TARGET.LANG.r2.pdf``,
  and never replaces one.

The JSON records the snapshot id at drill time. ``restic tag`` (a pin) rewrites a snapshot
under a new id, so the printed report names the id the snapshot has when it is printed
(``lineage.current``) and says what the JSON holds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secops.errors import IntegrityError, UsageError
from secops.files import atomic_write
from secops.keys.signature import public_key_id, sign
from secops.layout import StateDir
from secops.pathtext import decode, display, encode_tree
from secops.reports import paper, revisions
from secops.reports.i18n import lang_of, words

if TYPE_CHECKING:
    from secops.config.schema import Signing

PRINT_SUFFIXES = (".html", ".pdf", ".pdf.sig")
VERIFY_CMD = "secops report verify-drill {json} --public-key office-ed25519.pub"
OPENSSL_CMDS = ("jq -r .signature {sig} | base64 -d > chu-ky.sig",
                "openssl pkeyutl -verify -pubin -inkey office-ed25519.pub -rawin "
                "-in {json} -sigfile chu-ky.sig")


# -- the page (pure) ----------------------------------------------------------------------------

def view(report: dict[str, Any], lang: str, *, current_id: str | None = None,
         printed: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the template shows. ``current_id``: the snapshot's id now (default: the one the
    JSON records); ``printed``: ``{"json", "sig", "pdf_sig", "sha256", "time",
    "revision"}`` of the files this page belongs to (missing keys: not shown)."""
    lang = lang_of(lang)
    w = words(lang)
    t = w.table("drill")
    p = printed or {}
    recorded = str(report["snapshot_id"])
    current = current_id or recorded
    when = str(p.get("time") or report["time"])
    day = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone().date()
    office = str(report.get("office_name") or report.get("office") or "")
    json_name = str(p.get("json") or "drill.json")
    sig_name = str(p.get("sig") or f"{json_name}.sig")
    key = report.get("report_signed_by") or w.term("common", "unknown")
    v: dict[str, Any] = {
        "office_name": office, "office": report.get("office", ""), "target": report["target"],
        "masthead": paper.masthead(office, day, lang, str(report.get("office_place") or "")),
        "signer": paper.signer(office, lang),
        "time_local": paper.local_time(report["time"], lang, seconds=True, zone=True),
        "snapshot_time_local": paper.local_time(report["snapshot_time"], lang, seconds=True,
                                                zone=True),
        "subtitle": t["subtitle"].format(
            target=report["target"],
            time=paper.local_time(report["time"], lang, zone=True)),
        "snapshot_id": current,
        "snapshot_note": t["snapshot_same"] if current == recorded else t["snapshot_moved"],
        "snapshot_old": None if current == recorded else recorded,
        "files_checked": f"{int(report['files_checked']):,}".replace(
            ",", "." if lang == "vi" else ","),
        "bytes_human": paper.size(float(report["bytes"]), lang),
        "rto_text": paper.duration(float(report["rto_s"]), lang),
        "rpo_text": paper.duration(float(report["rpo_s"]), lang),
        "ok": bool(report["ok"]),
        # file names as a person reads them (a name that is not UTF-8: \xff, marked)
        "mismatched": [display(decode(str(x))) for x in report.get("mismatched") or []],
        "missing": [display(decode(str(x))) for x in report.get("missing") or []],
        # the restore's own messages (English): marked as the system's, as they are
        "problems": [w.system(display(decode(str(x)))) for x in report.get("problems") or []],
        "warnings": [w.system(display(decode(str(x)))) for x in report.get("warnings") or []],
        "manifest_signed_by": report.get("manifest_signed_by") or w.term("common", "unknown"),
        "report_signed_by": key,
        "signed_text": t["signed_json"].format(json=json_name, sig=sig_name, key=key),
        "sha256": p.get("sha256"), "pdf_sig": p.get("pdf_sig"),
        "pdf_signed_text": t["pdf_signed"].format(sig=p["pdf_sig"]) if p.get("pdf_sig")
        else "",
        "verify_cmd": VERIFY_CMD.format(json=json_name).split(" "),
        "openssl_cmds": [c.format(json=json_name, sig=sig_name).split(" ")
                         for c in OPENSSL_CMDS],
        "printed_text": t["printed"].format(
            time=paper.local_time(when, lang, seconds=True, zone=True)),
        "revision_text": t["revision"].format(n=p["revision"])
        if int(p.get("revision") or 1) > 1 else "",
    }
    return v


def render_html(report: dict[str, Any], lang: str, *, current_id: str | None = None,
                printed: dict[str, Any] | None = None) -> str:
    """The readable page (pure: a dict in, HTML out); see ``view`` for the keywords."""
    import jinja2

    lang = lang_of(lang)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("secops.reports", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)
    v = view(report, lang, current_id=current_id, printed=printed)
    return env.get_template("drill.html.j2").render(
        r=v, t=words(lang).table("drill"), pt=words(lang).table("paper"), lang=lang)


def pdf_meta(report: dict[str, Any], lang: str, when: datetime) -> Any:
    from secops.reports.pdf import PdfMeta

    t = words(lang).table("drill")
    return PdfMeta(title=f"{t['title']}{paper.DASH}{report['target']}{paper.DASH}"
                         f"{paper.local_time(report['time'], lang)}",
                   author=str(report.get("office_name") or report.get("office") or "secops"),
                   created=when, subject=t["subject"].format(target=report["target"]),
                   keywords=("secops", "drill", str(report.get("office", ""))), lang=lang)


# -- files --------------------------------------------------------------------------------------

def base_name(stamp: str, target: str) -> str:
    return f"drill-{stamp}-{target}"


def write_report(state: StateDir, report: dict[str, Any], lang: str, stamp: str,
                 now: datetime | None = None, *, signing: Signing | None = None
                 ) -> dict[str, Any]:
    """Write ``drill-STAMP-TARGET.json`` and its ``.json.sig``, then print it in ``lang``
    (HTML, PDF and the PDF's signature): ``{"json", "html", "pdf", "signature"}``, or
    ``{"json", "print_error"}`` when the PDF could not be made (the signed result stands;
    ``secops report drill FILE.json`` prints it later)."""
    from secops.errors import SecopsError
    from secops.keys.store import load_office_key

    key = load_office_key(state.ed25519_key)
    report = {**report, "report_signed_by": public_key_id(key.public_key())}
    base = base_name(stamp, str(report["target"]))
    # UTF-8 JSON whatever the file names: one that is not UTF-8 as b64:... (pathtext)
    data = json.dumps(encode_tree(report), ensure_ascii=False, indent=2,
                      sort_keys=True).encode("utf-8")
    json_path = state.reports / f"{base}.json"
    atomic_write(json_path, data, 0o640)
    atomic_write(state.reports / f"{base}.json.sig", sign(data, key), 0o640)
    try:
        printed = print_report(state, json_path, lang, now=now, signing=signing)
    except SecopsError as e:
        return {"json": str(json_path), "print_error": str(e)}
    return {"json": str(json_path), **{k: printed[k] for k in ("html", "pdf", "signature",
                                                              "pades") if k in printed}}


def print_report(state: StateDir, json_path: Path, lang: str, *,
                 now: datetime | None = None, signing: Signing | None = None
                 ) -> dict[str, Any]:
    """The printed report of a signed drill JSON, in ``lang``, as the next free revision:
    ``{"html", "pdf", "signature", "revision", "snapshot_id", "recorded_snapshot_id"}``.
    The JSON's signature is checked first (office key): nothing is printed from a JSON that
    does not verify. With ``signing`` (the config's [signing]) the PDF is PAdES-signed too,
    before anything is written (``"pades"`` in the result says how)."""
    from secops.backup import lineage
    from secops.keys.signature import load_public_key
    from secops.keys.store import load_office_key
    from secops.reports.pdf import pades_summary, render_report_pdf

    lang = lang_of(lang)
    data = json_path.read_bytes()
    check_signature(json_path, load_public_key(state.ed25519_pub))
    report = json.loads(data)
    key = load_office_key(state.ed25519_key)
    recorded = str(report["snapshot_id"])
    current = lineage.current(state.root / "state.db", str(report["target"]), recorded)
    base = json_path.name.removesuffix(".json") + f".{lang}"
    folder = json_path.parent
    n = revisions.next_free(folder, base, PRINT_SUFFIXES)
    stem = revisions.stem(base, n)
    when = now or datetime.now().astimezone()
    printed = {"json": json_path.name, "sig": f"{json_path.name}.sig",
               "pdf_sig": f"{stem}.pdf.sig", "sha256": hashlib.sha256(data).hexdigest(),
               "time": when.isoformat(), "revision": n}
    html = render_html(report, lang, current_id=current, printed=printed)
    office = str(report.get("office_name") or report.get("office") or "secops")
    pdf, signed = render_report_pdf(html, pdf_meta(report, lang, when), signing, office, lang)
    out = {"html": folder / f"{stem}.html", "pdf": folder / f"{stem}.pdf",
           "signature": folder / f"{stem}.pdf.sig"}
    atomic_write(out["html"], html.encode("utf-8"), 0o640)
    atomic_write(out["pdf"], pdf, 0o640)
    atomic_write(out["signature"], sign(pdf, key), 0o640)
    pades = {"pades": pades_summary(signed)} if signed else {}
    return {**{k: str(v) for k, v in out.items()}, "revision": n, "snapshot_id": current,
            "recorded_snapshot_id": recorded, "language": lang, **pades}


def check_signature(path: Path, public_key: Any) -> dict[str, Any]:
    """``path`` against ``path.sig`` (Ed25519, the office key); an ``IntegrityError`` (exit
    1) names what is wrong. Returns ``{"file", "signature", "key_id"}``."""
    from secops.keys.signature import verify

    sig = path.with_name(path.name + ".sig")
    for f in (path, sig):
        if not f.is_file():
            raise UsageError(f"{f}: no such file",
                             hint="the drill report and its .sig file must be side by side")
    verify(path.read_bytes(), sig.read_bytes(), public_key, str(path))
    return {"file": str(path), "signature": str(sig), "key_id": public_key_id(public_key)}


def verify_file(path: Path, public_key: Any) -> dict[str, Any]:
    """What ``secops report verify-drill`` prints: the signature, and for the JSON what
    the drill found."""
    out: dict[str, Any] = {"ok": False, **check_signature(path, public_key)}
    out["ok"] = True
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_bytes())
        except ValueError:
            raise IntegrityError(f"{path}: signed, but not a drill report (not JSON)") from None
        out["drill"] = {k: doc.get(k) for k in ("ok", "target", "snapshot_id", "time",
                                                "files_checked", "rto_s", "rpo_s")}
    return out
