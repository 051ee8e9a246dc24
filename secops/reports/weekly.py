"""The weekly report for the office leadership (every Monday): what the week's data says about
backups, integrity, incidents, drills, the audit and system logs and storage; as HTML (inline
SVG charts), a printable PDF signed with the office GPG key, and JSON.

- ``build`` gathers one ISO week (local time of the server) into a JSON-able dict;
- ``render_html`` (``weekly_view``) turns it into the page (pure), Vietnamese by default,
  English with "en";
- ``write_weekly`` writes ``state_dir/reports/weekly-<YYYY-Www>.<lang>.{html,pdf,json}`` and
  the detached, armored GPG signature of the PDF ``....pdf.asc`` (the PDF is what is printed,
  filed and mailed, and what a reader checks with ``gpg --verify``; the hashes of all three
  files go into the ``report.weekly`` audit record). Each language has its own files, and a
  report once written is never replaced: writing the week again gives revision 2
  (``weekly-2026-W11.vi.r2.pdf``), which names the one it follows (``revisions``);
- ``deliver`` mails the PDF and its signature to the notify group "office";
- ``run_weekly`` is the daemon's Monday job: both of the above, once per week.

One source per figure:

- successful backups: the snapshots of each target (``restic snapshots``, what ``secops
  snapshots --json`` lists) whose time falls in the week: every backup, whoever made it
  (daemon, ``backup now``, an incident's snapshot, the safety snapshot before a restore);
  only when a target cannot be listed, secops's own record of its backups (state.db), and
  the report says so;
- failed backups: the ``backup.failed`` records of the audit log (every run records one);
- detections: the detectors' events (state.db ``events``); freezing and unfreezing are
  containment, counted apart;
- drills: state.db ``drills``, each snapshot named by the id it has now (``lineage``).

RPO method: the time of each change is not stored, so the exposure is measured per target as
the gaps between consecutive snapshots (their times: when the backup started) that end in
the week, the first one reaching back to the last snapshot before the week. A gap is an upper
bound on how long a change could have waited for its backup.
"""

from __future__ import annotations

import bisect
import contextlib
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

from secops import database
from secops.clock import Clock, iso_epoch, iso_utc
from secops.config.schema import Config
from secops.errors import SecopsError, SigningError, UsageError
from secops.layout import StateDir
from secops.pathtext import decode, display
from secops.reports import revisions
from secops.reports.weekly_view import (  # the report's page, from here too
    fmt_bytes,
    fmt_duration,
    fmt_percent,
    mail_text,
    pdf_meta,
    render_html,
    success_rate,
    view,
)

if TYPE_CHECKING:
    from secops.backup.models import Snapshot
    from secops.backup.restic import Repo

__all__ = [
    "CONTAINMENT_KINDS", "DETECTION_KINDS", "RPO_BOUNDS", "SERVICE_KINDS", "build",
    "default_week", "deliver", "fmt_bytes", "fmt_duration", "fmt_percent", "gap_stats",
    "mail_text", "parse_week", "paths_for", "pdf_meta", "render_html", "run_weekly",
    "signed_report", "success_rate", "view", "week_bounds", "write_weekly",
]

WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
DETECTION_KINDS = ("integrity.unauthorized_change", "ransomware.suspected", "canary.touched")
CONTAINMENT_KINDS = ("integrity.frozen", "integrity.unfrozen")
# protection interrupted: the daemon could not back up, watch, detect or record for a while
SERVICE_KINDS = ("backup.stalled", "target.unreachable", "state.lost", "state.disk_full",
                 "state.corrupt", "audit.disabled", "config.reload_failed", "daemon.error",
                 "integrity.monitor_stopped", "watch.folder_missing", "watch.degraded")
RPO_BOUNDS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)   # bins: < 1 min ... >= 1 day
REASONS = ("change", "schedule", "manual", "incident", "pre_restore", "other")
EVENT_ROWS = 40
STATS_TIMEOUT_S = 300.0
FILE_SUFFIXES = (".html", ".pdf", ".pdf.asc", ".json")


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


def reason_of(tags: tuple[str, ...] | list[str]) -> str:
    """Why a snapshot was made, from its tags (``reason:change`` ...; ``pre-restore``)."""
    if "pre-restore" in tags:
        return "pre_restore"
    for t in tags:
        if t.startswith("reason:") and t[7:] in REASONS:
            return t[7:]
    return "other"


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
    listings = _listings(cfg)
    db = _open_db(state.root / "state.db")
    try:
        audit_recs = list(_audit_records(state, ("backup.failed", "logs.verified",
                                                 "logs.sealed"), span))
        backups = _backups(cfg, db, span, days=days, tz=tz, audit_recs=audit_recs,
                           listings=listings)
        doc = {
            "kind": "secops.weekly-report", "version": 2,
            "office": {"name": cfg.office.name, "code": cfg.office.code,
                       "place": cfg.office.place},
            "week": {"label": label, "start": iso_utc(start), "end": iso_utc(end),
                     "days": [d.isoformat() for d in days],
                     "utc_offset": start.strftime("%z"), "complete": end <= now},
            "generated": iso_utc(now),
            "backups": backups,
            "integrity": _integrity(db, span),
            "service": _service(db, span),
            "review": _review(cfg),
            "incidents": _incidents(cfg, state, db, span),
            "drills": _drills(state, db, span, listings),
            "audit": _audit_status(cfg, db, span),
            "logs": _logs_status(cfg, db, span, audit_recs),
            "storage": _storage(cfg, state, listings),
        }
    finally:
        if db is not None:
            db.close()
    return doc


def _listings(cfg: Config) -> dict[str, tuple[list[Snapshot] | None, str | None]]:
    """Each target's snapshots (what ``secops snapshots --json`` lists), or why not."""
    from secops.backup.engine import Engine
    from secops.backup.targets import mask_repository

    engine = Engine.from_config(cfg)
    out: dict[str, tuple[list[Snapshot] | None, str | None]] = {}
    for t in cfg.backup.targets:
        snaps, failures = engine.snapshots(t.name)
        if failures:
            e = failures[0][1]
            out[t.name] = (None, mask_repository(str(getattr(e, "message", e))))
        else:
            out[t.name] = (snaps, None)
    return out


def _open_db(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    db = database.connect(path, timeout=30)
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


def _failures(audit_recs: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """(time, target) of each failed backup run: the audit log's ``backup.failed`` records
    of a run (the daemon's, ``secops backup now``'s: data.target); the daemon's alert of
    the same name (data.details) is the same failure and is not counted again."""
    return [(_epoch(r["time"]), str(r["data"]["target"])) for r in audit_recs
            if r.get("kind") == "backup.failed" and isinstance(r.get("data"), dict)
            and "target" in r["data"]]


def _made(snaps: list[Snapshot], span: tuple[float, float]
          ) -> tuple[list[float], float | None, dict[str, int]]:
    """The week's snapshot times (sorted), the last one before the week, and why they
    were made."""
    times = sorted((s.time.timestamp(), reason_of(s.tags)) for s in snaps)
    week = [(t, r) for t, r in times if span[0] <= t < span[1]]
    before = max((t for t, _ in times if t < span[0]), default=None)
    reasons = dict.fromkeys(REASONS, 0)
    for _, r in week:
        reasons[r] += 1
    return [t for t, _ in week], before, reasons


def _recorded(db: sqlite3.Connection | None, name: str, span: tuple[float, float]
              ) -> tuple[list[float], float | None]:
    """secops's own record of the target's backups (when the repository cannot be read)."""
    rows = _rows(db, "backups", "SELECT started FROM backups WHERE target = ? AND "
                 "started >= ? AND started < ? ORDER BY started", (name, *span))
    prev = _rows(db, "backups", "SELECT MAX(started) AS s FROM backups WHERE target = ? "
                 "AND started < ?", (name, span[0]))
    before = prev[0]["s"] if prev and prev[0]["s"] is not None else None
    return [float(r["started"]) for r in rows], before


def _backups(cfg: Config, db: sqlite3.Connection | None, span: tuple[float, float], *,
             days: list[date], tz: tzinfo | None, audit_recs: list[dict[str, Any]],
             listings: dict[str, tuple[list[Snapshot] | None, str | None]]
             ) -> dict[str, Any]:
    failures = _failures(audit_recs)
    names = [t.name for t in cfg.backup.targets]
    extra = [str(r["target"]) for r in _rows(
        db, "backups", "SELECT DISTINCT target FROM backups WHERE started >= ? AND "
        "started < ?", span)]
    for n in [*extra, *(n for _, n in failures)]:
        if n not in names:
            names.append(n)
    index = {d: i for i, d in enumerate(days)}

    def day_of(ts: float) -> int | None:
        return index.get(_local(datetime.fromtimestamp(ts, UTC), tz).date())

    out = []
    for name in names:
        snaps, listing_error = listings.get(name, (None, "not in the configuration"))
        reasons: dict[str, int] | None = None
        if snaps is not None:
            ts, before, reasons = _made(snaps, span)
        else:
            ts, before = _recorded(db, name, span)
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
            "source": "repository" if snaps is not None else "record",
            "listing_error": listing_error, "reasons": reasons,
            "success_rate": success_rate(len(ts), len(fails)),
            "rpo": gap_stats(ts, before), "per_day": per_day,
            "last_ok_time": cur[0]["last_ok_time"] if cur else None,
            "last_error": cur[0]["last_error"] if cur else None,
            "failing_since": _iso(cur[0]["failing_since"]) if cur else None})
    return {"targets": out, "rpo_bins_s": list(RPO_BOUNDS)}


def _events(db: sqlite3.Connection | None, span: tuple[float, float],
            kinds: tuple[str, ...], keep: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The events of ``kinds`` in the span; ``keep``: details copied as they are."""
    lo, hi = _iso_span(span)
    marks = ", ".join("?" * len(kinds))           # placeholders only: the kinds are bound
    sql = ("SELECT time, kind, source, severity, details FROM events "  # noqa: S608
           f"WHERE kind IN ({marks}) AND time >= ? AND time < ? ORDER BY id")
    rows = _rows(db, "events", sql, (*kinds, lo, hi))
    items = []
    for r in rows:
        details = json.loads(r["details"])
        # as a person reads them: a name that is not UTF-8 with its stray bytes as \xff
        paths = [display(decode(p)) for p in details.get("paths", []) if isinstance(p, str)]
        items.append({"time": r["time"], "kind": r["kind"], "severity": r["severity"],
                      "source": r["source"], "files": len(paths), "paths": paths[:3],
                      "score": details.get("score"),
                      **{k: details.get(k) for k in keep}})
    return items


def _service(db: sqlite3.Connection | None, span: tuple[float, float]) -> dict[str, Any]:
    """The week's interruptions of protection (a backup stalled, a target unreachable,
    the state disk full, the audit log unsealable...), counted from state.db's events."""
    items = _events(db, span, SERVICE_KINDS, keep=("target", "error"))
    counts = dict.fromkeys(SERVICE_KINDS, 0)
    for i in items:
        counts[i["kind"]] += 1
    return {"counts": counts, "total": len(items), "events": items[:EVENT_ROWS]}


def _review(cfg: Config) -> dict[str, Any]:
    """The last risk review of the server (``secops review``, weekly by the daemon), as it
    was kept: its time, score, and the checks that failed at high or critical severity."""
    from secops.review.store import last_path

    try:
        doc = json.loads(last_path(Path(cfg.paths.state_dir)).read_text(encoding="utf-8"))
        checks = [c for c in doc["checks"] if isinstance(c, dict)]
        score = doc.get("score")
        return {"time": str(doc["time"]), "score": score if isinstance(score, int) else None,
                "failed": sum(c.get("status") == "fail" for c in checks),
                "failed_high": sorted(str(c["id"]) for c in checks
                                      if c.get("status") == "fail" and
                                      c.get("severity") in ("critical", "high"))}
    except (OSError, ValueError, KeyError, TypeError):
        return {"time": None, "score": None, "failed": 0, "failed_high": []}


def _integrity(db: sqlite3.Connection | None, span: tuple[float, float]) -> dict[str, Any]:
    """Detections (the detectors' events) and, apart, containment (freeze, unfreeze)."""
    items = _events(db, span, DETECTION_KINDS)
    contained = _events(db, span, CONTAINMENT_KINDS)
    counts = dict.fromkeys(DETECTION_KINDS, 0)
    for i in items:
        counts[i["kind"]] += 1
    held = dict.fromkeys(CONTAINMENT_KINDS, 0)
    for i in contained:
        held[i["kind"]] += 1
    meta = {str(r["key"]): str(r["value"]) for r in _rows(
        db, "fim_meta", "SELECT key, value FROM fim_meta WHERE key IN "
        "('last_baseline', 'last_scan', 'last_verify', 'canaries')")}
    files = _rows(db, "fim_files", "SELECT count(*) AS n FROM fim_files")
    canaries = json.loads(meta["canaries"]) if "canaries" in meta else {}
    return {"counts": counts, "total": len(items), "events": items[:EVENT_ROWS],
            "containment": {"counts": held, "events": contained[:EVENT_ROWS]},
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


def _drills(state: StateDir, db: sqlite3.Connection | None, span: tuple[float, float],
            listings: dict[str, tuple[list[Snapshot] | None, str | None]]) -> dict[str, Any]:
    """The week's drills; each snapshot by the id it has now (a pin rewrites it), and
    whether the target still has it (``exists``: None when the target cannot be listed)."""
    from secops.backup import lineage

    lo, hi = _iso_span(span)
    rows = _rows(db, "drills", "SELECT time, target, snapshot_id, ok, files_checked, bytes, "
                 "rto_s, rpo_s, report FROM drills WHERE time >= ? AND time < ? ORDER BY time",
                 (lo, hi))
    items = []
    for r in rows:
        recorded = str(r["snapshot_id"])
        current = lineage.current(state.root / "state.db", str(r["target"]), recorded)
        snaps = listings.get(str(r["target"]), (None, None))[0]
        exists = None if snaps is None else any(s.id.startswith(current) for s in snaps)
        items.append({"time": r["time"], "target": r["target"], "snapshot_id": recorded,
                      "current_id": current, "exists": exists, "ok": bool(r["ok"]),
                      "files_checked": r["files_checked"], "bytes": r["bytes"],
                      "rto_s": r["rto_s"], "rpo_s": r["rpo_s"],
                      "report": Path(str(r["report"])).name})
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
        doc = {"ok": False, "records": None, "problem": "unavailable", "detail": str(e)}
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
            out["error"] = str(e)
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


def _storage(cfg: Config, state: StateDir,
             listings: dict[str, tuple[list[Snapshot] | None, str | None]]) -> dict[str, Any]:
    """Size per repository (``restic stats``) and the snapshots it holds (the listing the
    backup figures come from); free space of the local disks."""
    from secops.backup.engine import Engine
    from secops.backup.targets import mask_repository, parse_repository

    engine = Engine.from_config(cfg)
    targets = []
    disks = [_disk("state_dir", state.root)]
    for t in cfg.backup.targets:
        snaps, listing_error = listings.get(t.name, (None, None))
        entry: dict[str, Any] = {"target": t.name, "ok": False, "error": listing_error,
                                 "snapshots": None if snaps is None else len(snaps)}
        if snaps is not None:
            try:
                stats = repo_stats(cfg, engine.open(t))
                entry.update(ok=True, total_size=int(stats.get("total_size", 0)),
                             uncompressed_size=stats.get("total_uncompressed_size"))
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


# -- files, signature, delivery ---------------------------------------------------------------

def base_name(label: str, lang: str) -> str:
    return f"weekly-{label}.{lang}"


def paths_for(state: StateDir, label: str, lang: str, revision: int = 1) -> dict[str, Path]:
    """The files of one revision of the week's report in ``lang``."""
    stem = revisions.stem(base_name(label, lang), revision)
    return {"report": state.reports / f"{stem}.html", "pdf": state.reports / f"{stem}.pdf",
            "signature": state.reports / f"{stem}.pdf.asc",
            "json": state.reports / f"{stem}.json"}


def _result(p: dict[str, Path], label: str, fpr: str, revision: int, lang: str
            ) -> dict[str, Any]:
    return {"report": str(p["report"]), "pdf": str(p["pdf"]), "signature": str(p["signature"]),
            "json": str(p["json"]), "week": label, "fingerprint": fpr, "revision": revision,
            "language": lang}


def delivery_marker(state: StateDir, label: str) -> Path:
    return state.reports / f"weekly-{label}.delivery.json"


def _previous(state: StateDir, label: str, lang: str, revision: int) -> dict[str, Any] | None:
    """What the page says of the revision before ``revision``: its PDF, when it was made,
    and whether (and when) it was delivered."""
    if revision <= 1:
        return None
    p = paths_for(state, label, lang, revision - 1)
    out: dict[str, Any] = {"revision": revision - 1, "pdf": p["pdf"].name, "generated": None,
                           "delivered": None}
    with contextlib.suppress(OSError, ValueError):
        out["generated"] = json.loads(p["json"].read_text(encoding="utf-8")).get("generated")
    with contextlib.suppress(OSError, ValueError):
        m = json.loads(delivery_marker(state, label).read_text(encoding="utf-8"))
        if m.get("pdf") in (None, p["pdf"].name):
            out["delivered"] = m.get("time")
    return out


def write_weekly(cfg: Config, week: str | None, lang: str, clock: Clock, *,
                 tz: tzinfo | None = None, actor: str | None = None) -> dict[str, Any]:
    """Build, render, sign and write the week's report as a new revision (a report once
    written is never replaced); ``{"report", "pdf", "signature", "json", "week",
    "fingerprint", "revision", "language", "previous"}``. Nothing is written unless the PDF
    is signed."""
    from secops.audit import record_safely
    from secops.files import atomic_write
    from secops.keys.gpg import Gpg
    from secops.reports.pdf import pades_summary, render_report_pdf

    state = StateDir(Path(cfg.paths.state_dir))
    doc = build(cfg, week, clock, tz)
    label = doc["week"]["label"]
    gpg = Gpg(state.gnupg)
    fprs = gpg.secret_fingerprints()
    if not fprs:
        raise SigningError(f"no office GPG key in {state.gnupg}: the weekly report cannot be "
                           "signed", hint="run 'secops init'")
    revision = revisions.next_free(state.reports, base_name(label, lang), FILE_SUFFIXES)
    p = paths_for(state, label, lang, revision)
    previous = _previous(state, label, lang, revision)
    doc.update(language=lang, signing_key=fprs[0], revision=revision, previous=previous,
               files={k: v.name for k, v in p.items()})
    html = render_html(doc, lang).encode("utf-8")
    pdf, signed = render_report_pdf(html.decode("utf-8"), pdf_meta(doc, lang), cfg.signing,
                                    cfg.office.name, lang)   # PAdES when [signing] is set
    pades = {"pades": pades_summary(signed)} if signed else {}
    sig = gpg.sign_detached(pdf, fprs[0])
    data = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    for key, content in (("report", html), ("json", data), ("pdf", pdf), ("signature", sig)):
        atomic_write(p[key], content, 0o640)
    record_safely(state.root, cfg.office.code, "report.weekly", {
        "week": label, "language": lang, "revision": revision, "fingerprint": fprs[0],
        **{f"{k}_sha256": hashlib.sha256(c).hexdigest()
           for k, c in (("html", html), ("pdf", pdf), ("json", data))},
        "pdf": str(p["pdf"]), "signature": str(p["signature"]), **pades}, actor)
    return {**_result(p, label, fprs[0], revision, lang), "previous": previous, **pades}


def signed_report(cfg: Config, label: str, lang: str) -> dict[str, Any] | None:
    """The latest revision of the week's report in ``lang`` whose files all exist and whose
    PDF's signature is good."""
    from secops.keys.gpg import Gpg

    state = StateDir(Path(cfg.paths.state_dir))
    found = revisions.existing(state.reports, base_name(label, lang), ".pdf.asc")
    if not found:
        return None
    p = paths_for(state, label, lang, found[-1])
    if not all(f.exists() for f in p.values()):
        return None
    gpg = Gpg(state.gnupg)
    v = gpg.verify_detached(p["signature"].read_bytes(), p["pdf"])
    if not v.valid or v.fingerprint not in gpg.secret_fingerprints():
        return None
    return _result(p, label, str(v.fingerprint), found[-1], lang)


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
    "revision", "language", "delivery"}``: ``created`` False when a signed report was
    already there (it is delivered as it is, never rewritten); ``delivery`` the send
    results, or ``"already queued"``."""
    from secops.files import atomic_write

    label = week or default_week(clock.now(), tz)
    language = lang or cfg.office.language
    state = StateDir(Path(cfg.paths.state_dir))
    existing = signed_report(cfg, label, language)
    out = existing or write_weekly(cfg, label, language, clock, tz=tz,
                                   actor="daemon:report")
    out = {**out, "created": existing is None}
    marker = delivery_marker(state, label)
    if marker.exists():
        out["delivery"] = "already queued"
        return out
    try:
        results = deliver(cfg, out)
    except SecopsError as e:          # no marker: the next run tries again
        out["delivery"] = [{"ok": False, "error": str(e)}]
        return out
    atomic_write(marker, json.dumps({"time": iso_utc(clock.now()), "results": results,
                                     "pdf": Path(out["pdf"]).name,
                                     "revision": out["revision"]},
                                    ensure_ascii=False).encode("utf-8"), 0o640)
    out["delivery"] = results
    return out
