"""The weekly report for the office leadership (every Monday): what the week's data says about
backups, integrity, incidents, drills, the audit and system logs and storage; as HTML (inline
SVG charts), a printable PDF signed with the office GPG key, and JSON.

- ``build`` gathers one ISO week (local time of the server) into a JSON-able dict;
- ``render_html`` turns it into the page (pure), Vietnamese by default, English with "en";
- ``write_weekly`` writes ``state_dir/reports/weekly-<YYYY-Www>.{html,pdf,json}`` and the
  detached, armored GPG signature of the PDF ``weekly-<YYYY-Www>.pdf.asc`` (the PDF is what
  is printed, filed and mailed, and what a reader checks with ``gpg --verify``; the hashes of
  all three files go into the ``report.weekly`` audit record);
- ``deliver`` mails the PDF and its signature to the notify group "office";
- ``run_weekly`` is the daemon's Monday job: both of the above, once per week.

RPO method: the time of each change is not stored, so the exposure is measured per target as
the gaps between consecutive successful backups (start times) that end in the week, the first
one reaching back to the last backup before the week. A gap is an upper bound on how long a
change could have waited for its backup.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
import re
import shutil
import sqlite3
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secops.clock import Clock, iso_epoch, iso_utc
from secops.config.schema import Config
from secops.errors import SecopsError, SigningError, UsageError
from secops.layout import StateDir
from secops.reports import charts

if TYPE_CHECKING:
    from secops.backup.restic import Repo

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
INTEGRITY_KINDS = ("integrity.unauthorized_change", "ransomware.suspected", "canary.touched",
                   "integrity.frozen", "integrity.unfrozen")
RPO_BOUNDS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)   # bins: < 1 min ... >= 1 day
EVENT_ROWS = 40
STATS_TIMEOUT_S = 300.0
NBSP = "\u00a0"     # a number and its unit stay on one line


# -- weeks (pure) -----------------------------------------------------------------------------

def parse_week(text: str) -> tuple[int, int]:
    """``2026-W11`` -> (2026, 11); a ``UsageError`` (exit 2) names what is wrong."""
    m = WEEK_RE.match(text.strip())
    if m is None:
        raise UsageError(f"--week {text!r}: expected an ISO week YYYY-Www, e.g. 2026-W11")
    year, week = int(m[1]), int(m[2])
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise UsageError(f"--week {text!r}: {year} has no ISO week {week} (weeks run from "
                         f"01 to {date(year, 12, 28).isocalendar().week})") from None
    return year, week


def _local(dt: datetime, tz: tzinfo | None) -> datetime:
    return dt.astimezone(tz) if tz is not None else dt.astimezone()


def _midnight(day: date, tz: tzinfo | None) -> datetime:
    if tz is not None:
        return datetime.combine(day, time(), tz)
    return datetime.combine(day, time()).astimezone()   # the system's zone, DST included


def default_week(now: datetime, tz: tzinfo | None = None) -> str:
    """The last complete ISO week before ``now`` (on a Monday: the week that just ended)."""
    y, w, _ = (_local(now, tz).date() - timedelta(days=7)).isocalendar()
    return f"{y}-W{w:02d}"


def week_bounds(label: str, tz: tzinfo | None = None) -> tuple[datetime, datetime, list[date]]:
    """Local midnight of its Monday, of the next Monday, and its seven days."""
    year, week = parse_week(label)
    monday = date.fromisocalendar(year, week, 1)
    days = [monday + timedelta(days=i) for i in range(7)]
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz), days


# -- statistics (pure) --------------------------------------------------------------------------

def gap_stats(starts: list[float], before: float | None) -> dict[str, Any]:
    """RPO exposure from backup start times (sorted) and the last start before the week."""
    seq = ([before] if before is not None else []) + starts
    gaps = sorted(b - a for a, b in itertools.pairwise(seq))
    bins = [0] * (len(RPO_BOUNDS) + 1)
    for g in gaps:
        bins[bisect.bisect_right(RPO_BOUNDS, g)] += 1
    if not gaps:
        return {"gaps": 0, "max_s": None, "median_s": None, "p95_s": None, "bins": bins}
    p95 = gaps[max(0, math.ceil(0.95 * len(gaps)) - 1)]          # nearest rank
    return {"gaps": len(gaps), "max_s": round(gaps[-1], 1),
            "median_s": round(statistics.median(gaps), 1), "p95_s": round(p95, 1),
            "bins": bins}


def success_rate(ok: int, failed: int) -> float | None:
    return round(100.0 * ok / (ok + failed), 1) if ok + failed else None


# -- gathering (I/O) --------------------------------------------------------------------------

def build(cfg: Config, week: str | None, clock: Clock, tz: tzinfo | None = None
          ) -> dict[str, Any]:
    """The week's report as JSON-able data (times in UTC, sizes in bytes, durations in s)."""
    now = clock.now()
    label = week or default_week(now, tz)
    start, end, days = week_bounds(label, tz)
    if start > now:
        raise UsageError(f"--week {label}: that week has not begun yet")
    state = StateDir(Path(cfg.paths.state_dir))
    span = (start.timestamp(), end.timestamp())
    db = _open_db(state.root / "state.db")
    try:
        audit_recs = list(_audit_records(state, ("backup.failed", "logs.verified",
                                                 "logs.sealed"), span))
        backups = _backups(cfg, db, span, days=days, tz=tz, audit_recs=audit_recs)
        doc = {
            "kind": "secops.weekly-report", "version": 1,
            "office": {"name": cfg.office.name, "code": cfg.office.code},
            "week": {"label": label, "start": iso_utc(start), "end": iso_utc(end),
                     "days": [d.isoformat() for d in days],
                     "utc_offset": start.strftime("%z"), "complete": end <= now},
            "generated": iso_utc(now),
            "backups": backups,
            "integrity": _integrity(db, span),
            "incidents": _incidents(cfg, state, db, span),
            "drills": _drills(db, span),
            "audit": _audit_status(cfg, db, span),
            "logs": _logs_status(cfg, db, span, audit_recs),
            "storage": _storage(cfg, state),
        }
    finally:
        if db is not None:
            db.close()
    return doc


def _open_db(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def _rows(db: sqlite3.Connection | None, table: str, sql: str, params: tuple[Any, ...] = ()
          ) -> list[sqlite3.Row]:
    if db is None or db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = ?", (table,)).fetchone() is None:
        return []
    return list(db.execute(sql, params))


def _iso_span(span: tuple[float, float]) -> tuple[str, str]:
    return (iso_utc(datetime.fromtimestamp(span[0], UTC)),
            iso_utc(datetime.fromtimestamp(span[1], UTC)))


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_epoch(ts)


def _audit_records(state: StateDir, kinds: tuple[str, ...], span: tuple[float, float]
                   ) -> Iterator[dict[str, Any]]:
    """Audit records of ``kinds`` within the week (segments last written before it skipped)."""
    from secops.audit.log import segments

    if not state.audit.is_dir():
        return
    lo, hi = _iso_span(span)
    needles = [f'"kind":"{k}"'.encode() for k in kinds]
    for path in segments(state.audit):
        if path.name != "audit.jsonl" and path.stat().st_mtime < span[0]:
            continue
        with path.open("rb") as f:
            for line in f:
                if not any(n in line for n in needles):
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue      # `audit verify` reports it; the report carries on
                if isinstance(rec, dict) and lo <= str(rec.get("time", "")) < hi:
                    yield rec


def _failures(db: sqlite3.Connection | None, span: tuple[float, float],
              audit_recs: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """(time, target) of each failed backup run: the daemon's ``backup.failed`` events, and
    the audit records of failed runs by anyone else (``secops backup now``); the daemon's
    own runs are in the audit log too, but counted once, through their events."""
    lo, hi = _iso_span(span)
    rows = _rows(db, "events", "SELECT time, details FROM events WHERE kind = 'backup.failed' "
                 "AND time >= ? AND time < ?", (lo, hi))
    out = [(_epoch(r["time"]), str(json.loads(r["details"]).get("target", "?"))) for r in rows]
    out += [(_epoch(r["time"]), str(r["data"]["target"])) for r in audit_recs
            if r.get("kind") == "backup.failed" and isinstance(r.get("data"), dict)
            and "target" in r["data"] and not str(r.get("actor", "")).startswith("daemon")]
    return out


def _backups(cfg: Config, db: sqlite3.Connection | None, span: tuple[float, float], *,
             days: list[date], tz: tzinfo | None, audit_recs: list[dict[str, Any]]
             ) -> dict[str, Any]:
    failures = _failures(db, span, audit_recs)
    starts: dict[str, list[float]] = {t.name: [] for t in cfg.backup.targets}
    for r in _rows(db, "backups", "SELECT target, started FROM backups WHERE started >= ? AND "
                   "started < ? ORDER BY started", span):
        starts.setdefault(str(r["target"]), []).append(float(r["started"]))
    for _, name in failures:
        starts.setdefault(name, [])
    index = {d: i for i, d in enumerate(days)}

    def day_of(ts: float) -> int | None:
        return index.get(_local(datetime.fromtimestamp(ts, UTC), tz).date())

    out = []
    for name, ts in starts.items():
        prev = _rows(db, "backups", "SELECT MAX(started) AS s FROM backups WHERE target = ? "
                     "AND started < ?", (name, span[0]))
        before = prev[0]["s"] if prev and prev[0]["s"] is not None else None
        fails = [t for t, n in failures if n == name]
        per_day = [[0, 0] for _ in days]
        for t in ts:
            if (d := day_of(t)) is not None:
                per_day[d][0] += 1
        for t in fails:
            if (d := day_of(t)) is not None:
                per_day[d][1] += 1
        cur = _rows(db, "targets", "SELECT last_ok_time, last_error, failing_since FROM targets "
                    "WHERE name = ?", (name,))
        out.append({
            "target": name, "ok": len(ts), "failed": len(fails),
            "success_rate": success_rate(len(ts), len(fails)),
            "rpo": gap_stats(ts, before), "per_day": per_day,
            "last_ok_time": cur[0]["last_ok_time"] if cur else None,
            "last_error": cur[0]["last_error"] if cur else None,
            "failing_since": _iso(cur[0]["failing_since"]) if cur else None})
    return {"targets": out, "rpo_bins_s": list(RPO_BOUNDS)}


def _integrity(db: sqlite3.Connection | None, span: tuple[float, float]) -> dict[str, Any]:
    lo, hi = _iso_span(span)
    rows = _rows(db, "events", "SELECT time, kind, source, severity, details FROM events "
                 "WHERE kind IN (?, ?, ?, ?, ?) AND time >= ? AND time < ? ORDER BY id",
                 (*INTEGRITY_KINDS, lo, hi))
    counts = dict.fromkeys(INTEGRITY_KINDS, 0)
    items = []
    for r in rows:
        counts[r["kind"]] += 1
        details = json.loads(r["details"])
        paths = [str(p) for p in details.get("paths", []) if isinstance(p, str)]
        items.append({"time": r["time"], "kind": r["kind"], "severity": r["severity"],
                      "source": r["source"], "files": len(paths), "paths": paths[:3],
                      "score": details.get("score")})
    meta = {str(r["key"]): str(r["value"]) for r in _rows(
        db, "fim_meta", "SELECT key, value FROM fim_meta WHERE key IN "
        "('last_baseline', 'last_scan', 'last_verify', 'canaries')")}
    files = _rows(db, "fim_files", "SELECT count(*) AS n FROM fim_files")
    canaries = json.loads(meta["canaries"]) if "canaries" in meta else {}
    return {"counts": counts, "total": len(items), "events": items[:EVENT_ROWS],
            "baseline_files": int(files[0]["n"]) if files else 0,
            "canaries": len(canaries) if isinstance(canaries, dict | list) else 0,
            **{k: _iso(float(meta[k])) if k in meta else None
               for k in ("last_baseline", "last_scan", "last_verify")}}


def _incidents(cfg: Config, state: StateDir, db: sqlite3.Connection | None,
               span: tuple[float, float]) -> dict[str, Any]:
    from secops.playbooks.incidents import IncidentStore

    if db is None:
        return {"items": [], "by_state": {}, "opened": 0}
    store = IncidentStore(state.root / "state.db", cfg.office.code)
    try:
        found = [i for i in store.all() if i.opened < span[1]
                 and (i.closed is None or i.closed >= span[0])]
    finally:
        store.close()
    items = [{**i.summary(), "closed": _iso(i.closed), "new": i.opened >= span[0]}
             for i in sorted(found, key=lambda i: i.opened)]
    by_state: dict[str, int] = {}
    for i in items:
        by_state[i["state"]] = by_state.get(i["state"], 0) + 1
    return {"items": items, "by_state": by_state, "opened": sum(i["new"] for i in items)}


def _drills(db: sqlite3.Connection | None, span: tuple[float, float]) -> dict[str, Any]:
    lo, hi = _iso_span(span)
    rows = _rows(db, "drills", "SELECT time, target, snapshot_id, ok, files_checked, bytes, "
                 "rto_s, rpo_s FROM drills WHERE time >= ? AND time < ? ORDER BY time", (lo, hi))
    items = [{"time": r["time"], "target": r["target"], "snapshot_id": r["snapshot_id"],
              "ok": bool(r["ok"]), "files_checked": r["files_checked"], "bytes": r["bytes"],
              "rto_s": r["rto_s"], "rpo_s": r["rpo_s"]} for r in rows]
    rtos = sorted(float(i["rto_s"]) for i in items)
    return {"items": items, "count": len(items), "passed": sum(i["ok"] for i in items),
            "rto_max_s": rtos[-1] if rtos else None,
            "rto_median_s": statistics.median(rtos) if rtos else None}


def _tampered(db: sqlite3.Connection | None, span: tuple[float, float], kind: str) -> int:
    lo, hi = _iso_span(span)
    rows = _rows(db, "events", "SELECT count(*) AS n FROM events WHERE kind = ? AND time >= ? "
                 "AND time < ?", (kind, lo, hi))
    return int(rows[0]["n"]) if rows else 0


def _audit_status(cfg: Config, db: sqlite3.Connection | None, span: tuple[float, float]
                  ) -> dict[str, Any]:
    from secops.daemon.plan import verify_own_audit_log

    try:
        doc = verify_own_audit_log(cfg)
    except (SecopsError, OSError) as e:
        doc = {"ok": False, "records": None, "problem": f"unavailable: {e}"}
    keep = ("ok", "records", "first_bad_seq", "problem", "detail", "checkpoints_verified",
            "skipped")
    return {**{k: doc.get(k) for k in keep},
            "tampered_events": _tampered(db, span, "audit.tampered")}


def _logs_status(cfg: Config, db: sqlite3.Connection | None, span: tuple[float, float],
                 audit_recs: list[dict[str, Any]]) -> dict[str, Any]:
    checks = []
    for r in audit_recs:
        data: dict[str, Any] = r["data"] if isinstance(r.get("data"), dict) else {}
        summary = data.get("verified") if r.get("kind") == "logs.sealed" else data
        if isinstance(summary, dict) and "ok" in summary:
            checks.append((str(r["time"]), summary))
    out: dict[str, Any] = {
        "seal_configured": bool(cfg.logs.seal), "files": [], "ok": None, "error": None,
        "checks": len(checks), "checks_failed": sum(not s.get("ok") for _, s in checks),
        "last_check": checks[-1][0] if checks else None,
        "tampered_events": _tampered(db, span, "logs.tampered"), "journal": None}
    if cfg.logs.seal:
        from secops.logs.seal import verify

        try:
            report = verify(cfg, journal=False)
            out["files"] = [{"path": f.path, "status": f.status} for f in report.files]
            out["ok"] = report.ok
        except (SecopsError, OSError) as e:
            out["error"] = f"unavailable: {e}"
    journals = [(t, s["journal"]) for t, s in checks if isinstance(s.get("journal"), dict)
                and s["journal"].get("ran")]
    if journals:
        out["journal"] = {**_journal(journals[-1][1]), "time": journals[-1][0]}
    elif cfg.logs.journald != "off":
        from secops.logs.journal import journal_check

        out["journal"] = {**_journal(journal_check(cfg)), "time": None}
    return out


def _journal(j: dict[str, Any]) -> dict[str, Any]:
    def n(v: Any) -> int:
        return len(v) if isinstance(v, list) else int(v or 0)

    return {"ran": bool(j.get("ran")), "ok": bool(j.get("ok")), "passed": n(j.get("passed")),
            "failed": n(j.get("failed")), "unverified": n(j.get("unverified")),
            "detail": str(j.get("detail") or "")}


def repo_stats(cfg: Config, repo: Repo, timeout: float = STATS_TIMEOUT_S) -> dict[str, Any]:
    """``restic stats --mode raw-data --json`` of one repository (the restic adapter's way:
    repository and password in the environment, errors classified). ``--no-lock``: a report
    only reads, and must neither wait for nor leave a lock on an append-only target."""
    from secops import process
    from secops.backup.restic import Restic

    argv = [cfg.backup.restic_binary, *repo.options, "--no-lock", "stats", "--mode", "raw-data",
            "--json"]
    done = process.run(argv, env=repo.env(), timeout=timeout)
    if done.returncode != 0:
        raise Restic(cfg.backup.restic_binary).error(repo, done, "restic stats")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            doc = json.loads(line)
            if isinstance(doc, dict):
                return doc
    raise SecopsError(f"target {repo.name!r}: restic stats printed no JSON")


def _storage(cfg: Config, state: StateDir) -> dict[str, Any]:
    from secops.backup.engine import Engine
    from secops.backup.targets import mask_repository, parse_repository

    engine = Engine.from_config(cfg)
    targets = []
    disks = [_disk("state_dir", state.root)]
    for t in cfg.backup.targets:
        entry: dict[str, Any] = {"target": t.name, "ok": False, "error": None}
        try:
            stats = repo_stats(cfg, engine.open(t))
            entry.update(ok=True, total_size=int(stats.get("total_size", 0)),
                         uncompressed_size=stats.get("total_uncompressed_size"),
                         snapshots=int(stats.get("snapshots_count", 0)))
        except (SecopsError, OSError, ValueError) as e:
            entry["error"] = mask_repository(str(getattr(e, "message", e)))
        targets.append(entry)
        ep = parse_repository(t.repository)
        if ep.kind == "local" and ep.path:
            disks.append(_disk(t.name, Path(ep.path)))
    return {"targets": targets, "disks": disks}


def _disk(label: str, path: Path) -> dict[str, Any]:
    try:
        u = shutil.disk_usage(path)
    except OSError as e:
        return {"label": label, "path": str(path), "ok": False,
                "error": e.strerror or type(e).__name__}
    return {"label": label, "path": str(path), "ok": True, "total": u.total, "used": u.used,
            "free": u.free}


# -- words (Vietnamese by default, English) ------------------------------------------------------

WORDS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "BÁO CÁO TUẦN VỀ AN TOÀN DỮ LIỆU BẦU CỬ",
        "nation": "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "motto": "Độc lập - Tự do - Hạnh phúc",
        "dated": "ngày {d} tháng {m} năm {y}",
        "period": "Tuần {week}: từ {start} đến hết {end}",
        "office": "Đơn vị",
        "generated": "Thời điểm lập báo cáo",
        "partial": "Tuần chưa kết thúc: số liệu tính đến thời điểm lập báo cáo.",
        "summary": "Tóm tắt",
        "s_backups": "Sao lưu theo nơi lưu trữ",
        "s_integrity": "Thay đổi toàn vẹn và phát hiện",
        "s_incidents": "Sự cố và trạng thái",
        "s_drills": "Diễn tập khôi phục",
        "s_logs": "Kiểm tra nhật ký kiểm toán và nhật ký hệ thống",
        "s_storage": "Dung lượng lưu trữ",
        "method_title": "Cách tính",
        "method": "Tỷ lệ thành công = số lần sao lưu thành công / (thành công + thất bại) "
                  "trong tuần, theo từng nơi lưu trữ; lần thất bại gồm cảnh báo backup.failed của "
                  "dịch vụ và các lần sao lưu thủ công thất bại ghi trong nhật ký kiểm toán. "
                  "RPO (lượng "
                  "dữ liệu mới nhất có thể bị mất, tính bằng thời gian) được ước lượng bằng "
                  "khoảng cách giữa hai lần sao lưu thành công liên tiếp (theo thời điểm bắt "
                  "đầu) kết thúc trong tuần, khoảng đầu tiên tính từ lần sao lưu cuối của tuần "
                  "trước. Hệ thống không lưu thời điểm của từng thay đổi, nên mỗi khoảng là giới "
                  "hạn trên của thời gian một thay đổi phải chờ được sao lưu. RPO phân vị 95: "
                  "95 % số khoảng không dài hơn giá trị này. Giờ theo múi giờ của máy chủ "
                  "(UTC{offset}).",
        "target": "Nơi lưu trữ",
        "ok": "Thành công",
        "failed": "Thất bại",
        "success_rate": "Tỷ lệ thành công",
        "rpo_max": "RPO lớn nhất",
        "rpo_median": "RPO trung vị",
        "rpo_p95": "RPO phân vị 95",
        "state_now": "Tình trạng hiện tại",
        "failing_since": "đang lỗi từ {time}: {error}",
        "healthy": "bình thường, lần thành công gần nhất {time}",
        "never": "chưa có lần sao lưu thành công",
        "none": "Không có",
        "dash": "—",
        "chart_backups": "Số lần sao lưu mỗi ngày",
        "chart_backups_y": "Số lần",
        "chart_rpo": "Phân bố RPO: khoảng cách giữa hai lần sao lưu thành công liên tiếp",
        "chart_rpo_x": "Độ dài khoảng cách (thời gian dữ liệu mới chưa được sao lưu)",
        "chart_rpo_y": "Số khoảng",
        "rpo_bins": "< 1 phút|1-5 phút|5-15 phút|15-60 phút|1-4 giờ|4-24 giờ|≥ 1 ngày",
        "no_gaps": "Chưa đủ hai lần sao lưu để tính",
        "detections": "Số phát hiện trong tuần theo loại",
        "k_integrity.unauthorized_change": "Thay đổi trái phép tệp được bảo vệ",
        "k_ransomware.suspected": "Nghi ngờ mã độc tống tiền",
        "k_canary.touched": "Tệp mồi bị tác động",
        "k_integrity.frozen": "Khoanh vùng (chặn ghi) dữ liệu",
        "k_integrity.unfrozen": "Gỡ khoanh vùng sau khi xem xét",
        "time": "Thời điểm",
        "kind": "Loại",
        "severity": "Mức độ",
        "files": "Số tệp",
        "count": "Số lượng",
        "examples": "Ví dụ",
        "score": "điểm",
        "more": "… và {n} sự kiện khác (xem nhật ký kiểm toán).",
        "no_detections": "Không có phát hiện nào trong tuần.",
        "baseline": "Tệp trong cơ sở đối chiếu toàn vẹn",
        "canaries": "Tệp mồi đang theo dõi",
        "last_verify": "Lần kiểm tra băm toàn bộ gần nhất",
        "sev_critical": "nghiêm trọng",
        "sev_high": "cao",
        "sev_medium": "trung bình",
        "sev_low": "thấp",
        "sev_info": "thông tin",
        "incident": "Mã sự cố",
        "opened": "Mở lúc",
        "closed_at": "Đóng lúc",
        "state": "Trạng thái",
        "playbook": "Kịch bản xử lý",
        "st_open": "đang mở",
        "st_contained": "đã khoanh vùng",
        "st_recovered": "đã khôi phục",
        "st_closed": "đã đóng",
        "new": "mới trong tuần",
        "no_incidents": "Không có sự cố nào trong tuần.",
        "incident_note": "Trạng thái tại thời điểm lập báo cáo.",
        "snapshot": "Bản sao lưu",
        "result": "Kết quả",
        "files_checked": "Số tệp kiểm tra",
        "rto": "Thời gian khôi phục (RTO)",
        "rpo_drill": "Độ cũ dữ liệu (RPO)",
        "passed": "Đạt",
        "not_passed": "KHÔNG ĐẠT",
        "no_drills": "Không có lần diễn tập khôi phục nào trong tuần.",
        "drills_text": "{passed}/{count} lần đạt; RTO lớn nhất {max}, trung vị {median}",
        "audit_log": "Nhật ký kiểm toán",
        "records": "Số bản ghi",
        "checkpoints": "Điểm kiểm tra đã ký được xác minh",
        "audit_ok": "Nguyên vẹn: chuỗi băm và các điểm kiểm tra đã ký đều hợp lệ",
        "audit_bad": "PHÁT HIỆN SAI LỆCH tại bản ghi số {seq}: {problem}",
        "audit_empty": "Chưa có nhật ký kiểm toán",
        "tampered": "Cảnh báo giả mạo trong tuần",
        "syslogs": "Nhật ký hệ thống được niêm phong",
        "seal_off": "Chưa cấu hình niêm phong nhật ký hệ thống ([logs] seal)",
        "file": "Tệp",
        "status": "Tình trạng",
        "ls_ok": "nguyên vẹn",
        "ls_rotated": "đã xoay vòng, nội dung còn nguyên",
        "ls_unsealed": "chưa niêm phong",
        "ls_missing": "không có tệp",
        "ls_problem": "CÓ VẤN ĐỀ: {status}",
        "checks": "Số lần kiểm tra trong tuần",
        "checks_text": "{n} lần, {bad} lần có vấn đề; gần nhất {last}",
        "journal": "Nhật ký systemd (journald)",
        "journal_ok": "đạt: {passed} tệp hợp lệ",
        "journal_bad": "CÓ VẤN ĐỀ: {failed} tệp hỏng",
        "journal_not_run": "không kiểm tra ({detail})",
        "storage_target": "Kho sao lưu",
        "repo_size": "Dung lượng dữ liệu (đã nén, mã hóa)",
        "snapshots": "Số bản sao lưu",
        "unavailable": "không lấy được: {error}",
        "disk": "Ổ đĩa",
        "path": "Đường dẫn",
        "size": "Dung lượng",
        "used": "Đã dùng",
        "free": "Còn trống",
        "disk_state": "Dữ liệu của dịch vụ (state_dir)",
        "disk_target": "Kho sao lưu {name}",
        "sum_backups": "Sao lưu",
        "sum_backups_text": "{ok} lần thành công, {failed} lần thất bại (tỷ lệ thành công "
                            "{rate})",
        "sum_rpo": "RPO lớn nhất trong tuần",
        "sum_integrity": "Phát hiện về toàn vẹn",
        "sum_incidents": "Sự cố",
        "sum_incidents_text": "{n} sự cố trong tuần ({new} mới), {open} chưa đóng",
        "sum_drills": "Diễn tập khôi phục",
        "sum_audit": "Nhật ký kiểm toán và nhật ký hệ thống",
        "sum_storage": "Dung lượng lưu trữ",
        "sum_storage_text": "{size} ({n}/{total} kho sao lưu có số liệu); ổ đĩa còn trống "
                            "ít nhất {free}",
        "good": "đạt",
        "bad": "CÓ VẤN ĐỀ",
        "not_configured": "chưa cấu hình",
        "prepared_by": "Người lập",
        "leader": "Lãnh đạo Ủy ban nhân dân xã",
        "sign_hint": "(Ký, ghi rõ họ tên)",
        "stamp_hint": "(Ký tên, đóng dấu)",
        "digital": "Chữ ký số",
        "digital_text": "Tệp PDF của báo cáo này ({pdf}) được ký số bằng khóa GPG của đơn vị "
                        "{office}, dấu vân tay:",
        "verify_hint": "Kiểm tra chữ ký (tệp {sig} gửi kèm):",
        "unsigned": "(chưa ký số)",
        "page": "Trang",
        "weekdays": "T2|T3|T4|T5|T6|T7|CN",
        "u_s": "giây",
        "u_min": "phút",
        "u_h": "giờ",
        "u_d": "ngày",
        "mail_subject": "[secops] Báo cáo tuần {week} - {office}",
        "mail_intro": "Kính gửi Lãnh đạo {office},\n\nĐính kèm báo cáo tuần {week} (từ {start} "
                      "đến hết {end}) về an toàn dữ liệu bầu cử, để in, ký, đóng dấu và lưu.",
        "mail_sig": "Tệp đính kèm: bản PDF và chữ ký số GPG của đơn vị (dấu vân tay {fpr}).\n"
                    "Kiểm tra chữ ký: gpg --verify {sig} {pdf}",
    },
    "en": {
        "title": "WEEKLY ELECTION DATA SECURITY REPORT",
        "nation": "SOCIALIST REPUBLIC OF VIET NAM",
        "motto": "Independence - Freedom - Happiness",
        "dated": "{date}",
        "period": "Week {week}: from {start} to the end of {end}",
        "office": "Office",
        "generated": "Report generated",
        "partial": "The week is not over yet: figures up to the time of the report.",
        "summary": "Summary",
        "s_backups": "Backups per target",
        "s_integrity": "Integrity changes and detections",
        "s_incidents": "Incidents and their states",
        "s_drills": "Recovery drills",
        "s_logs": "Audit log and system log verification",
        "s_storage": "Storage use",
        "method_title": "Method",
        "method": "Success rate = successful backups / (successful + failed) during the week, "
                  "per target; failures are the service's backup.failed alerts and the failed "
                  "manual backups in the audit log. The RPO (how much recent data "
                  "could be lost, as a time) is estimated from the gaps between consecutive "
                  "successful backups (start times) that end in the week, the first reaching "
                  "back to the last backup of the week before. The time of each change is not "
                  "stored, so each gap is an upper bound on how long a change waited for its "
                  "backup. RPO 95th percentile: 95 % of the gaps are no longer than this. Times "
                  "are in the server's time zone (UTC{offset}).",
        "target": "Target",
        "ok": "Successful",
        "failed": "Failed",
        "success_rate": "Success rate",
        "rpo_max": "RPO max",
        "rpo_median": "RPO median",
        "rpo_p95": "RPO 95th percentile",
        "state_now": "Current state",
        "failing_since": "failing since {time}: {error}",
        "healthy": "healthy, last success {time}",
        "never": "no successful backup yet",
        "none": "None",
        "dash": "—",
        "chart_backups": "Backups per day",
        "chart_backups_y": "Backups",
        "chart_rpo": "RPO distribution: gaps between consecutive successful backups",
        "chart_rpo_x": "Length of the gap (time new data waited for a backup)",
        "chart_rpo_y": "Gaps",
        "rpo_bins": "< 1 min|1-5 min|5-15 min|15-60 min|1-4 h|4-24 h|≥ 1 day",
        "no_gaps": "Fewer than two backups: nothing to measure",
        "detections": "Detections during the week, by kind",
        "k_integrity.unauthorized_change": "Unauthorised change to a protected file",
        "k_ransomware.suspected": "Suspected ransomware",
        "k_canary.touched": "Decoy (canary) file touched",
        "k_integrity.frozen": "Containment (writes blocked)",
        "k_integrity.unfrozen": "Containment lifted after review",
        "time": "Time",
        "kind": "Kind",
        "severity": "Severity",
        "files": "Files",
        "count": "Number",
        "examples": "Examples",
        "score": "score",
        "more": "… and {n} more events (see the audit log).",
        "no_detections": "No detections during the week.",
        "baseline": "Files in the integrity baseline",
        "canaries": "Decoy files watched",
        "last_verify": "Last full hash verification",
        "sev_critical": "critical",
        "sev_high": "high",
        "sev_medium": "medium",
        "sev_low": "low",
        "sev_info": "info",
        "incident": "Incident",
        "opened": "Opened",
        "closed_at": "Closed",
        "state": "State",
        "playbook": "Playbook",
        "st_open": "open",
        "st_contained": "contained",
        "st_recovered": "recovered",
        "st_closed": "closed",
        "new": "new this week",
        "no_incidents": "No incidents during the week.",
        "incident_note": "States as of the time of the report.",
        "snapshot": "Snapshot",
        "result": "Result",
        "files_checked": "Files checked",
        "rto": "Time to recover (RTO)",
        "rpo_drill": "Age of the data (RPO)",
        "passed": "Passed",
        "not_passed": "FAILED",
        "no_drills": "No recovery drill during the week.",
        "drills_text": "{passed}/{count} passed; RTO max {max}, median {median}",
        "audit_log": "Audit log",
        "records": "Records",
        "checkpoints": "Signed checkpoints verified",
        "audit_ok": "Intact: the hash chain and the signed checkpoints are valid",
        "audit_bad": "TAMPERING FOUND at record {seq}: {problem}",
        "audit_empty": "No audit log yet",
        "tampered": "Tampering alerts during the week",
        "syslogs": "Sealed system logs",
        "seal_off": "System log sealing is not configured ([logs] seal)",
        "file": "File",
        "status": "Status",
        "ls_ok": "intact",
        "ls_rotated": "rotated, content intact",
        "ls_unsealed": "not sealed yet",
        "ls_missing": "no such file",
        "ls_problem": "PROBLEM: {status}",
        "checks": "Checks during the week",
        "checks_text": "{n}, {bad} with problems; last {last}",
        "journal": "systemd journal (journald)",
        "journal_ok": "passed: {passed} valid file(s)",
        "journal_bad": "PROBLEM: {failed} corrupt file(s)",
        "journal_not_run": "not checked ({detail})",
        "storage_target": "Backup repository",
        "repo_size": "Stored data (compressed, encrypted)",
        "snapshots": "Snapshots",
        "unavailable": "unavailable: {error}",
        "disk": "Disk",
        "path": "Path",
        "size": "Size",
        "used": "Used",
        "free": "Free",
        "disk_state": "Service data (state_dir)",
        "disk_target": "Backup repository {name}",
        "sum_backups": "Backups",
        "sum_backups_text": "{ok} successful, {failed} failed (success rate {rate})",
        "sum_rpo": "Largest RPO of the week",
        "sum_integrity": "Integrity detections",
        "sum_incidents": "Incidents",
        "sum_incidents_text": "{n} incident(s) during the week ({new} new), {open} not closed",
        "sum_drills": "Recovery drills",
        "sum_audit": "Audit log and system logs",
        "sum_storage": "Storage use",
        "sum_storage_text": "{size} ({n}/{total} repositories answered); least free disk "
                            "space {free}",
        "good": "passed",
        "bad": "PROBLEM",
        "not_configured": "not configured",
        "prepared_by": "Prepared by",
        "leader": "Leadership of the commune People's Committee",
        "sign_hint": "(signature, full name)",
        "stamp_hint": "(signature and official stamp)",
        "digital": "Digital signature",
        "digital_text": "The PDF file of this report ({pdf}) is digitally signed with the GPG "
                        "key of {office}, fingerprint:",
        "verify_hint": "To check the signature (file {sig}, sent with it):",
        "unsigned": "(not signed)",
        "page": "Page",
        "weekdays": "Mon|Tue|Wed|Thu|Fri|Sat|Sun",
        "u_s": "s",
        "u_min": "min",
        "u_h": "h",
        "u_d": "d",
        "mail_subject": "[secops] Weekly report {week} - {office}",
        "mail_intro": "To the leadership of {office},\n\nAttached is the weekly election data "
                      "security report for week {week} ({start} to {end}), to print, sign, "
                      "stamp and file.",
        "mail_sig": "Attached: the PDF and the office's GPG signature (key fingerprint {fpr}).\n"
                    "To check it: gpg --verify {sig} {pdf}",
    },
}


# -- the view: numbers and times as a reader wants them (pure) ------------------------------------

def _dec(x: float, lang: str, digits: int = 1) -> str:
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{x:.0f}"
    return text.replace(".", ",") if lang == "vi" else text


def fmt_percent(x: float | None, lang: str) -> str:
    if x is None:
        return WORDS[lang]["dash"]
    return f"{_dec(x, lang)}{NBSP}%" if lang == "vi" else f"{_dec(x, lang)}%"


def fmt_duration(seconds: float | None, lang: str) -> str:
    """``45 giây``, ``5 phút 30 giây``, ``3 giờ 5 phút``, ``2 ngày 4 giờ`` (en: s, min, h, d)."""
    t = WORDS[lang]
    if seconds is None:
        return t["dash"]
    if seconds < 60:
        return f"{_dec(seconds, lang)}{NBSP}{t['u_s']}"
    units = ((86400, t["u_d"]), (3600, t["u_h"]), (60, t["u_min"]), (1, t["u_s"]))
    s = round(seconds)
    i = next(i for i, (size, _) in enumerate(units) if s >= size)
    n, rest = divmod(s, units[i][0])
    text = f"{n}{NBSP}{units[i][1]}"
    m = rest // units[i + 1][0]
    return f"{text} {m}{NBSP}{units[i + 1][1]}" if m else text


def fmt_bytes(n: float | None, lang: str) -> str:
    if n is None:
        return WORDS[lang]["dash"]
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{NBSP}B" if unit == "B" else f"{_dec(n, lang)}{NBSP}{unit}"
        n /= 1024
    return ""


def fmt_time(iso: str | None, lang: str) -> str:
    if not iso:
        return WORDS[lang]["dash"]
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return iso
    return dt.strftime("%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M")


def fmt_date(day: date, lang: str) -> str:
    return day.strftime("%d/%m/%Y" if lang == "vi" else "%Y-%m-%d")


def fingerprint_groups(fpr: str) -> str:
    return " ".join(fpr[i:i + 4] for i in range(0, len(fpr), 4))


def _day_labels(doc: dict[str, Any], lang: str) -> list[str]:
    names = WORDS[lang]["weekdays"].split("|")
    return [f"{names[i]} {date.fromisoformat(d):%d/%m}" for i, d in enumerate(doc["week"]["days"])]


def _status(ok: bool | None) -> str:
    return "na" if ok is None else "good" if ok else "bad"


def _backup_rows(doc: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    t = WORDS[lang]
    rows = []
    for b in doc["backups"]["targets"]:
        if b["failing_since"]:
            state = t["failing_since"].format(time=fmt_time(b["failing_since"], lang),
                                              error=b["last_error"] or "")
        elif b["last_ok_time"]:
            state = t["healthy"].format(time=fmt_time(b["last_ok_time"], lang))
        else:
            state = t["never"]
        rpo = b["rpo"]
        rows.append({"target": b["target"], "ok": b["ok"], "failed": b["failed"],
                     "rate": fmt_percent(b["success_rate"], lang),
                     "rpo_max": fmt_duration(rpo["max_s"], lang),
                     "rpo_median": fmt_duration(rpo["median_s"], lang),
                     "rpo_p95": fmt_duration(rpo["p95_s"], lang), "state": state,
                     "bad": bool(b["failing_since"]) or b["ok"] == 0})
    return rows


def _integrity_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = WORDS[lang]
    i = doc["integrity"]
    events = [{"time": fmt_time(e["time"], lang), "kind": t.get("k_" + e["kind"], e["kind"]),
               "severity": t.get("sev_" + e["severity"], e["severity"]), "files": e["files"],
               "examples": ", ".join(e["paths"]) + (
                   f" ({t['score']} {_dec(float(e['score']), lang)})"
                   if isinstance(e.get("score"), int | float) else "")}
              for e in i["events"]]
    return {"counts": [(t["k_" + k], n) for k, n in i["counts"].items()], "events": events,
            "more": t["more"].format(n=i["total"] - len(events)) if i["total"] > len(events)
            else "", "baseline": i["baseline_files"], "canaries": i["canaries"],
            "last_verify": fmt_time(i["last_verify"], lang)}


def _incident_rows(doc: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    t = WORDS[lang]
    return [{"id": x["id"], "kind": t.get("k_" + x["kind"], x["kind"]),
             "severity": t.get("sev_" + x["severity"], x["severity"]),
             "state": t.get("st_" + x["state"], x["state"]), "opened": fmt_time(x["opened"], lang),
             "closed": fmt_time(x["closed"], lang), "playbook": x["playbook"],
             "new": t["new"] if x["new"] else "", "open": x["state"] != "closed"}
            for x in doc["incidents"]["items"]]


def _drill_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = WORDS[lang]
    d = doc["drills"]
    rows = [{"time": fmt_time(x["time"], lang), "target": x["target"],
             "snapshot": x["snapshot_id"][:8], "ok": x["ok"],
             "result": t["passed"] if x["ok"] else t["not_passed"],
             "files": x["files_checked"], "rto": fmt_duration(x["rto_s"], lang),
             "rpo": fmt_duration(x["rpo_s"], lang)} for x in d["items"]]
    text = t["drills_text"].format(passed=d["passed"], count=d["count"],
                                   max=fmt_duration(d["rto_max_s"], lang),
                                   median=fmt_duration(d["rto_median_s"], lang)) \
        if d["count"] else t["no_drills"]
    return {"rows": rows, "text": text, "ok": d["count"] > 0 and d["passed"] == d["count"]}


def _logs_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = WORDS[lang]
    a, lg = doc["audit"], doc["logs"]
    if a.get("skipped"):
        audit_text = t["audit_empty"]
    elif a["ok"]:
        audit_text = t["audit_ok"]
    else:
        audit_text = t["audit_bad"].format(seq=a.get("first_bad_seq"),
                                           problem=a.get("problem") or a.get("detail") or "")
    files = [{"path": f["path"], "status": t.get("ls_" + f["status"]) or
              t["ls_problem"].format(status=f["status"]),
              "bad": f["status"] not in ("ok", "rotated", "unsealed", "missing")}
             for f in lg["files"]]
    j = lg["journal"]
    if j is None:
        journal = t["not_configured"]
    elif not j["ran"]:
        journal = t["journal_not_run"].format(detail=j["detail"])
    else:
        journal = (t["journal_ok"] if j["ok"] else t["journal_bad"]).format(
            passed=j["passed"], failed=j["failed"]) + (
            f" ({fmt_time(j['time'], lang)})" if j.get("time") else "")
    checks = t["checks_text"].format(n=lg["checks"], bad=lg["checks_failed"],
                                     last=fmt_time(lg["last_check"], lang))
    logs_ok = None if not lg["seal_configured"] else bool(lg["ok"]) and not lg["error"]
    if lg["tampered_events"] or lg["checks_failed"] or (j and j["ran"] and not j["ok"]):
        logs_ok = False
    return {"audit_text": audit_text, "audit_ok": bool(a["ok"]), "records": a.get("records"),
            "checkpoints": a.get("checkpoints_verified"),
            "audit_tampered": a["tampered_events"], "logs_tampered": lg["tampered_events"],
            "seal_configured": lg["seal_configured"], "seal_error": lg["error"],
            "files": files, "checks": checks, "journal": journal, "logs_ok": logs_ok}


def _storage_view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    t = WORDS[lang]
    s = doc["storage"]
    repos = [{"target": x["target"], "ok": x["ok"],
              "size": fmt_bytes(x.get("total_size"), lang) if x["ok"] else
              t["unavailable"].format(error=x["error"]),
              "snapshots": x.get("snapshots", t["dash"]) if x["ok"] else t["dash"]}
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
                          "size": t["unavailable"].format(error=d["error"]), "used": "",
                          "free": "", "low": True})
    return {"repos": repos, "disks": disks}


def _summary(doc: dict[str, Any], lang: str, v: dict[str, Any]) -> list[dict[str, str]]:
    t = WORDS[lang]
    bt = doc["backups"]["targets"]
    ok, failed = sum(b["ok"] for b in bt), sum(b["failed"] for b in bt)
    rpo_max = max((b["rpo"]["max_s"] for b in bt if b["rpo"]["max_s"] is not None), default=None)
    inc = doc["incidents"]
    open_n = sum(i["state"] != "closed" for i in inc["items"])
    st = doc["storage"]
    size = sum(x.get("total_size", 0) for x in st["targets"] if x["ok"])
    free = min((d["free"] for d in st["disks"] if d["ok"]), default=None)
    audit_ok = v["logs"]["audit_ok"] and v["logs"]["logs_ok"] is not False
    audit_text = t["good"] if audit_ok else t["bad"]
    if v["logs"]["logs_ok"] is None:
        audit_text += f" ({t['seal_off']})"
    return [
        {"label": t["sum_backups"], "status": _status(failed == 0 and all(b["ok"] for b in bt)),
         "text": t["sum_backups_text"].format(ok=ok, failed=failed,
                                              rate=fmt_percent(success_rate(ok, failed), lang))},
        {"label": t["sum_rpo"], "status": "na", "text": fmt_duration(rpo_max, lang)},
        {"label": t["sum_integrity"], "status": _status(doc["integrity"]["total"] == 0),
         "text": str(doc["integrity"]["total"])},
        {"label": t["sum_incidents"], "status": _status(open_n == 0),
         "text": t["sum_incidents_text"].format(n=len(inc["items"]), new=inc["opened"],
                                                open=open_n)},
        {"label": t["sum_drills"], "status": _status(v["drills"]["ok"]),
         "text": v["drills"]["text"]},
        {"label": t["sum_audit"], "status": _status(audit_ok), "text": audit_text},
        {"label": t["sum_storage"],
         "status": _status(all(x["ok"] for x in st["targets"]) and not any(
             d["low"] for d in v["storage"]["disks"])),
         "text": t["sum_storage_text"].format(size=fmt_bytes(size, lang),
                                              n=sum(x["ok"] for x in st["targets"]),
                                              total=len(st["targets"]),
                                              free=fmt_bytes(free, lang))},
    ]


def view(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """Everything the template shows, formatted for ``lang`` (times in the local zone)."""
    t = WORDS[lang]
    days = [date.fromisoformat(d) for d in doc["week"]["days"]]
    generated = datetime.fromisoformat(doc["generated"].replace("Z", "+00:00")).astimezone()
    offset = doc["week"]["utc_offset"]
    fpr = doc.get("signing_key")
    files = doc.get("files", {})
    v: dict[str, Any] = {
        "office": doc["office"]["name"], "office_upper": doc["office"]["name"].upper(),
        "week": doc["week"]["label"], "complete": doc["week"]["complete"],
        "period": t["period"].format(week=doc["week"]["label"],
                                     start=fmt_date(days[0], lang), end=fmt_date(days[-1], lang)),
        "dated": t["dated"].format(d=f"{generated:%d}", m=f"{generated:%m}",
                                   y=f"{generated:%Y}", date=fmt_date(generated.date(), lang)),
        "generated": fmt_time(doc["generated"], lang), "day_labels": _day_labels(doc, lang),
        "method": t["method"].format(offset=f"{offset[:3]}:{offset[3:]}"),
        "backups": _backup_rows(doc, lang), "integrity": _integrity_view(doc, lang),
        "incidents": _incident_rows(doc, lang), "drills": _drill_view(doc, lang),
        "logs": _logs_view(doc, lang), "storage": _storage_view(doc, lang),
        "fingerprint": fingerprint_groups(fpr) if fpr else t["unsigned"],
        "digital_text": t["digital_text"].format(pdf=files.get("pdf", ""), office=doc["office"][
            "name"]),
        "verify_hint": t["verify_hint"].format(sig=files.get("signature", "")),
        "verify_cmd": f"gpg --verify {files.get('signature', '')} {files.get('pdf', '')}",
    }
    v["summary"] = _summary(doc, lang, v)
    return v


def mail_text(doc: dict[str, Any], lang: str) -> tuple[str, str]:
    """Subject and body of the mail that carries the PDF and its signature."""
    t = WORDS[lang]
    v = view(doc, lang)
    days = [date.fromisoformat(d) for d in doc["week"]["days"]]
    subject = t["mail_subject"].format(week=v["week"], office=v["office"])
    lines = [t["mail_intro"].format(office=v["office"], week=v["week"],
                                    start=fmt_date(days[0], lang), end=fmt_date(days[-1], lang)),
             "", *(f"- {s['label']}: {s['text']}" for s in v["summary"]), "",
             t["mail_sig"].format(fpr=v["fingerprint"], sig=doc["files"]["signature"],
                                  pdf=doc["files"]["pdf"])]
    return subject, "\n".join(lines) + "\n"


# -- rendering (pure) ---------------------------------------------------------------------------

def render_html(doc: dict[str, Any], lang: str) -> str:
    """The self-contained printable page (A4), charts inline, in ``lang`` ("vi" or "en")."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(loader=jinja2.PackageLoader("secops.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    v = view(doc, lang)
    t = WORDS[lang]
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
        v=v, t=t, lang=lang, chart_backups=Markup(bars),  # noqa: S704 - escaped in charts.py
        chart_rpo=Markup(rpo))  # noqa: S704


# -- files, signature, delivery ---------------------------------------------------------------

def paths_for(state: StateDir, label: str) -> dict[str, Path]:
    base = state.reports / f"weekly-{label}"
    return {"report": base.with_suffix(".html"), "pdf": base.with_suffix(".pdf"),
            "signature": base.with_suffix(".pdf.asc"), "json": base.with_suffix(".json")}


def _result(p: dict[str, Path], label: str, fpr: str) -> dict[str, Any]:
    return {"report": str(p["report"]), "pdf": str(p["pdf"]), "signature": str(p["signature"]),
            "json": str(p["json"]), "week": label, "fingerprint": fpr}


def write_weekly(cfg: Config, week: str | None, lang: str, clock: Clock, *,
                 tz: tzinfo | None = None, actor: str | None = None) -> dict[str, Any]:
    """Build, render, sign and write the week's report; ``{"report", "pdf", "signature"}``
    (plus "json", "week", "fingerprint"). Nothing is written unless the PDF is signed."""
    from secops.audit import record_safely
    from secops.files import atomic_write
    from secops.keys.gpg import Gpg
    from secops.reports.pdf import render_pdf

    state = StateDir(Path(cfg.paths.state_dir))
    doc = build(cfg, week, clock, tz)
    label = doc["week"]["label"]
    gpg = Gpg(state.gnupg)
    fprs = gpg.secret_fingerprints()
    if not fprs:
        raise SigningError(f"no office GPG key in {state.gnupg}: the weekly report cannot be "
                           "signed", hint="run 'secops init'")
    p = paths_for(state, label)
    doc.update(language=lang, signing_key=fprs[0],
               files={k: v.name for k, v in p.items()})
    html = render_html(doc, lang).encode("utf-8")
    pdf = render_pdf(html.decode("utf-8"))
    sig = gpg.sign_detached(pdf, fprs[0])
    data = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    p["signature"].unlink(missing_ok=True)     # never an old signature beside a new PDF
    for key, content in (("report", html), ("json", data), ("pdf", pdf), ("signature", sig)):
        atomic_write(p[key], content, 0o640)
    record_safely(state.root, cfg.office.code, "report.weekly", {
        "week": label, "language": lang, "fingerprint": fprs[0],
        **{f"{k}_sha256": hashlib.sha256(c).hexdigest()
           for k, c in (("html", html), ("pdf", pdf), ("json", data))},
        "pdf": str(p["pdf"]), "signature": str(p["signature"])}, actor)
    return _result(p, label, fprs[0])


def signed_report(cfg: Config, label: str) -> dict[str, Any] | None:
    """The week's report if all its files exist and the PDF's signature is good."""
    from secops.keys.gpg import Gpg

    state = StateDir(Path(cfg.paths.state_dir))
    p = paths_for(state, label)
    if not all(f.exists() for f in p.values()):
        return None
    gpg = Gpg(state.gnupg)
    v = gpg.verify_detached(p["signature"].read_bytes(), p["pdf"])
    fprs = gpg.secret_fingerprints()
    if not v.valid or v.fingerprint not in fprs:
        return None
    return _result(p, label, str(v.fingerprint))


def deliver(cfg: Config, paths: dict[str, Any]) -> list[dict[str, Any]]:
    """Queue the PDF and its signature for the notify group "office" and try to send now
    (the daemon retries what fails). Skipped, and said so, when there is no such group."""
    from secops.playbooks.notify import Outbox

    if "office" not in cfg.notify.recipients:
        return [{"ok": False, "skipped": True,
                 "error": "no group 'office' in notify.recipients: the report was not sent"}]
    doc = json.loads(Path(paths["json"]).read_text(encoding="utf-8"))
    subject, body = mail_text(doc, doc.get("language", cfg.office.language))
    outbox = Outbox(cfg)
    msgs = outbox.enqueue(to=["office"], subject=subject, body=body,
                          attachments=[str(paths["pdf"]), str(paths["signature"])])
    return outbox.send_now(msgs)


def run_weekly(cfg: Config, clock: Clock, *, week: str | None = None, lang: str | None = None,
               tz: tzinfo | None = None) -> dict[str, Any]:
    """The daemon's job (every Monday morning, and at start-up to catch up): write the last
    complete week's report and deliver it, each at most once per week.

    Returns ``{"week", "created", "report", "pdf", "signature", "json", "fingerprint",
    "delivery"}``: ``created`` False when a signed report was already there; ``delivery``
    the send results, or ``"already queued"``."""
    from secops.files import atomic_write

    label = week or default_week(clock.now(), tz)
    state = StateDir(Path(cfg.paths.state_dir))
    existing = signed_report(cfg, label)
    out = existing or write_weekly(cfg, label, lang or cfg.office.language, clock, tz=tz,
                                   actor="daemon:report")
    out = {**out, "created": existing is None}
    marker = state.reports / f"weekly-{label}.delivery.json"
    if marker.exists():
        out["delivery"] = "already queued"
        return out
    try:
        results = deliver(cfg, out)
    except SecopsError as e:          # no marker: the next run tries again
        out["delivery"] = [{"ok": False, "error": str(e)}]
        return out
    atomic_write(marker, json.dumps({"time": iso_utc(clock.now()), "results": results},
                                    ensure_ascii=False).encode("utf-8"), 0o640)
    out["delivery"] = results
    return out
