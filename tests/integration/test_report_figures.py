"""The weekly and drill reports against the state they came from, with real restic: two
targets with backups (by hand, and the safety snapshot an in-place restore takes), a third
that cannot be reached, a drill, a pin that rewrites the drilled snapshot, and an attack's
detection with freeze and unfreeze. Every count is checked against ``secops snapshots
--json`` (per target, in the week's local-time bounds), the audit log and state.db; every
snapshot id the reports print is one ``snapshots --json`` lists."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from integration.office import Office, target_toml
from secops.backup.engine import Engine
from secops.clock import iso_utc
from secops.config.loader import load_config
from secops.daemon.state import StateDB
from secops.reports import weekly

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def in_week(iso: str, week: str) -> bool:
    start, end, _ = weekly.week_bounds(week)
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return start <= t < end


def audit_records(o: Office, kind: str) -> list[dict[str, Any]]:
    lines = (o.state / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def office(tmp_path: Path) -> Office:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo-a")),
                          target_toml("usb", str(tmp_path / "repo-b")),
                          target_toml("offsite", "rest:http://127.0.0.1:9/tan-ky/")]).write()
    o.run("init")                                     # offsite: unreachable, exit 3
    assert (tmp_path / "repo-a" / "config").exists() and (tmp_path / "repo-b" / "config").exists()
    assert o.run("backup", "now").code == 3           # local, usb ok; offsite failed
    (o.data / "ghi-chú.txt").write_text("Thay đổi sau lần sao lưu đầu\n", encoding="utf-8")
    assert o.run("backup", "now").code == 3
    sheet = o.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    sheet.write_text("bị mã hóa", encoding="utf-8")
    first = next(s["id"] for s in o.run("snapshots", "--target", "local", "--json").json())
    done = o.run("restore", first, "--target", "local", "--in-place")   # + a safety snapshot
    assert done.code == 0, done.err
    return o


def test_the_weekly_figures_are_the_state_s(office: Office) -> None:
    o = office
    cfg = load_config(o.config)
    drill = o.run("drill", "--target", "local", "--json")
    assert drill.code == 0, drill.err
    drilled = drill.json()["snapshot_id"]
    engine = Engine.from_config(cfg)                  # an incident pins the drilled snapshot
    repo = engine.open(cfg.target("local"))
    [snap] = [s for s in engine.snapshots("local")[0] if s.id == drilled]
    pinned = engine.retag(repo, snap, add=["pinned", "incident-INC-1"])
    assert pinned.id != drilled
    db = StateDB(o.state / "state.db", office="tan-ky")   # one attack, as the daemon records it
    now = iso_utc(datetime.now().astimezone())
    db.add_event(now, "canary.touched", "integrity", "critical", {"paths": ["/x/~canary.docx"]})
    db.add_event(now, "ransomware.suspected", "integrity", "critical", {"paths": ["/x/a.csv"]})
    db.add_event(now, "integrity.frozen", "integrity", "critical", {"paths": [str(o.data)]})
    db.add_event(now, "integrity.unfrozen", "cli", "info", {"paths": [str(o.data)]})
    db.close()

    year, number, _ = datetime.now().astimezone().isocalendar()
    week = f"{year}-W{number:02d}"                    # this week, as it is so far
    done = o.run("report", "weekly", "--week", week, "--json")
    assert done.code == 0, done.err
    out = done.json()
    doc = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    listed = o.run("snapshots", "--json")
    assert listed.code == 3                               # offsite cannot be listed
    snaps = listed.json()
    by = {b["target"]: b for b in doc["backups"]["targets"]}

    # backups: the snapshots of each target in the week, and the audit log's failures
    for target in ("local", "usb"):
        mine = [s for s in snaps if s["target"] == target]
        assert by[target]["source"] == "repository"
        assert by[target]["ok"] == sum(in_week(s["time"], week) for s in mine), target
        assert sum(d[0] for d in by[target]["per_day"]) == by[target]["ok"]
        storage = next(x for x in doc["storage"]["targets"] if x["target"] == target)
        assert storage["snapshots"] == len(mine)
    assert by["local"]["ok"] == 3 and by["usb"]["ok"] == 2   # local: + the safety snapshot
    assert by["local"]["reasons"]["pre_restore"] == 1 and by["local"]["reasons"]["manual"] == 2
    failures = [r for r in audit_records(o, "backup.failed")
                if in_week(r["time"], week) and isinstance(r["data"].get("target"), str)]
    for target in ("local", "usb", "offsite"):
        assert by[target]["failed"] == sum(r["data"]["target"] == target for r in failures)
    assert by["offsite"]["failed"] == 2 and by["offsite"]["source"] == "record"
    assert by["offsite"]["ok"] == 0

    # detections: the detectors' events; freeze and unfreeze apart
    assert doc["integrity"]["total"] == 2
    assert doc["integrity"]["containment"]["counts"] == {"integrity.frozen": 1,
                                                         "integrity.unfrozen": 1}

    # the drill: its snapshot by the id it has now, which snapshots --json lists
    [d] = doc["drills"]["items"]
    ids = {s["id"] for s in snaps}
    assert d["snapshot_id"] == drilled and d["current_id"] == pinned.id in ids
    assert d["exists"] is True
    page = visible(Path(out["report"]).read_text(encoding="utf-8"))
    assert pinned.id[:8] in page and drilled[:8] not in page
    summary = page[page.index("Tóm tắt"):page.index("1. Sao lưu theo nơi lưu trữ")]
    total_ok = by["local"]["ok"] + by["usb"]["ok"]
    assert f"Sao lưu {total_ok} lần thành công, 2 lần thất bại" in summary
    assert "Phát hiện về toàn vẹn 2 phát hiện (" in summary
    assert "ngăn chặn 1 lần, gỡ ngăn chặn 1 lần" in summary
    assert "Nhật ký hệ thống chưa cấu hình niêm phong" in summary


def test_the_drill_report_names_the_snapshot_as_it_is_now(office: Office,
                                                          tmp_path: Path) -> None:
    o = office
    cfg = load_config(o.config)
    done = o.run("drill", "--target", "usb", "--json")
    assert done.code == 0, done.err
    result = done.json()
    json_path = Path(result["report"])
    first_pdf = Path(result["pdf"])
    assert first_pdf.name == json_path.name.replace(".json", ".vi.pdf")
    page = visible(first_pdf.with_suffix(".html").read_text(encoding="utf-8"))
    assert result["snapshot_id"] in page and "mã đó không đổi" in page
    engine = Engine.from_config(cfg)
    [snap] = [s for s in engine.snapshots("usb")[0] if s.id == result["snapshot_id"]]
    pinned = engine.retag(engine.open(cfg.target("usb")), snap, add=["pinned"])

    printed = o.run("report", "drill", str(json_path), "--lang", "en", "--json")
    assert printed.code == 0, printed.err
    p = printed.json()
    assert p["snapshot_id"] == pinned.id and p["recorded_snapshot_id"] == snap.id
    assert pinned.id in {s["id"] for s in o.run("snapshots", "--target", "usb",
                                                "--json").json()}
    page = visible(Path(p["html"]).read_text(encoding="utf-8"))
    assert f"Snapshot {pinned.id} The current id: restore with this one." in page
    assert f"The signed JSON file records the id at drill time: {snap.id}" in page
    assert o.run("restore", pinned.id[:8], "--target", "usb", "--to",
                 str(tmp_path / "check")).code == 0      # the printed id restores

    keys = tmp_path / "keys"
    assert o.run("keys", "export-public", "--out", str(keys)).code == 0
    for f in (json_path, Path(p["pdf"]), first_pdf):
        ok = o.run("report", "verify-drill", str(f), "--public-key",
                   str(keys / "office-ed25519.pub"))
        assert ok.code == 0 and "verified" in ok.out, ok.err
