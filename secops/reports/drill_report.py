"""The drill report: signed JSON (for machines and the weekly report) and a printable page."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from secops.cli.render import human_bytes
from secops.files import atomic_write
from secops.keys.signature import public_key_id, sign
from secops.layout import StateDir
from secops.reports.i18n import DRILL


def render_html(report: dict[str, Any], lang: str) -> str:
    """The readable page (pure: a dict in, HTML out)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("secops.reports", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)
    view = dict(report)
    view["time_local"] = _local(report["time"])
    view["snapshot_time_local"] = _local(report["snapshot_time"])
    view["bytes_human"] = human_bytes(report["bytes"])
    return env.get_template("drill.html.j2").render(r=view, t=DRILL[lang], lang=lang)


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime(
        "%d/%m/%Y %H:%M:%S")


def write_report(state: StateDir, report: dict[str, Any], lang: str, stamp: str) -> Path:
    """Write ``drill-STAMP-TARGET.{json,json.sig,html}`` under reports/; return the JSON path."""
    from secops.keys.store import load_office_key

    key = load_office_key(state.ed25519_key)
    report = {**report, "report_signed_by": public_key_id(key.public_key())}
    base = state.reports / f"drill-{stamp}-{report['target']}"
    data = json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    json_path = base.with_suffix(".json")
    atomic_write(json_path, data, 0o640)
    atomic_write(base.with_suffix(".json.sig"), sign(data, key), 0o640)
    atomic_write(base.with_suffix(".html"), render_html(report, lang).encode("utf-8"), 0o640)
    return json_path
