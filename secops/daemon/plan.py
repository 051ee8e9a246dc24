"""The daemon's schedules (the ``schedule`` library) and the work each one does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from secops.clock import Clock
from secops.config.schema import Config


def build_schedule(cfg: Config, fire: Callable[[str], None]) -> Any:
    """A ``schedule.Scheduler`` whose jobs call ``fire(kind)``; nothing runs here."""
    import schedule

    s = schedule.Scheduler()
    sc = cfg.schedule
    if sc.backup_every_minutes:
        s.every(sc.backup_every_minutes).minutes.do(fire, "backup")
    if sc.rescan_every_minutes:
        s.every(sc.rescan_every_minutes).minutes.do(fire, "rescan")
    if sc.check_daily_at:
        s.every().day.at(sc.check_daily_at).do(fire, "check")
    if sc.retention_daily_at:
        s.every().day.at(sc.retention_daily_at).do(fire, "retention")
    if cfg.integrity.enabled and cfg.integrity.verify_daily_at:
        s.every().day.at(cfg.integrity.verify_daily_at).do(fire, "fim_verify")
    if sc.drill_weekday:
        getattr(s.every(), sc.drill_weekday).at(sc.drill_at).do(fire, "drill")
    if sc.review_weekday:
        getattr(s.every(), sc.review_weekday).at(sc.review_at).do(fire, "review")
    s.every(max(1, round(cfg.audit.checkpoint_minutes * 60))).seconds.do(
        fire, "audit_checkpoint")
    if cfg.audit.verify_every_minutes:
        s.every(cfg.audit.verify_every_minutes).minutes.do(fire, "audit_verify")
    if cfg.logs.seal and cfg.logs.seal_every_minutes:
        s.every(cfg.logs.seal_every_minutes).minutes.do(fire, "logs_seal")
    return s


def scheduled_work(cfg: Config, kind: str, clock: Clock) -> Callable[[], Any]:
    """The function the worker runs for a scheduled ``check``, ``retention`` or ``drill``."""
    from secops.backup.engine import Engine

    def check() -> Any:
        engine = Engine.from_config(cfg, clock)
        out = {}
        for t in cfg.backup.targets:
            try:
                repo = engine.open(t)
                engine.with_lock_retry(repo, lambda r=repo: engine.restic.check(  # type: ignore[misc]
                    r, cfg.schedule.check_read_data_subset))
                out[t.name] = "ok"
            except Exception as e:
                out[t.name] = str(e)
        return out

    def retention() -> Any:
        return Engine.from_config(cfg, clock).retention()

    def drill() -> Any:
        from secops.restore.drill import run_drill

        engine = Engine.from_config(cfg, clock)
        out = {}
        for t in cfg.backup.targets:
            try:
                r = run_drill(cfg, engine, "latest", t.name, clock=clock)
                out[t.name] = "ok" if r["ok"] else "FAILED"
            except Exception as e:
                out[t.name] = str(e)
        return out

    def audit_verify() -> Any:
        return verify_own_audit_log(cfg)

    def logs_seal() -> Any:
        from secops.logs.seal import run_periodic

        return run_periodic(cfg)

    def weekly_report() -> Any:
        from secops.reports.weekly import run_weekly

        return run_weekly(cfg, clock)

    def review() -> Any:
        from secops.review.periodic import run_periodic

        return run_periodic(cfg, clock)

    return {"check": check, "retention": retention, "drill": drill,
            "audit_verify": audit_verify, "logs_seal": logs_seal,
            "weekly_report": weekly_report, "review": review}[kind]


def weekly_report_due(cfg: Config, now: datetime) -> str | None:
    """The ISO week whose report is due at ``now`` (aware), once this week's report time
    (``[schedule] weekly_report_weekday/_at``, server local time) has passed: the last
    complete week. None when the report is off or this week's time has not come yet.

    Driven by the daemon's own clock, so a Monday missed while the daemon was down is caught
    up at start, and a test can inject the clock.
    """
    sc = cfg.schedule
    if not sc.weekly_report_weekday:
        return None
    local = now.astimezone()
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    hh, mm = (int(x) for x in sc.weekly_report_at.split(":"))
    week_start = (local - timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0)
    due_at = week_start + timedelta(days=days.index(sc.weekly_report_weekday), hours=hh,
                                    minutes=mm)
    if local < due_at:
        return None
    last = week_start - timedelta(days=1)  # a day of the last complete week
    year, week, _ = last.isocalendar()
    return f"{year}-W{week:02d}"


def verify_own_audit_log(cfg: Config) -> dict[str, Any]:
    """The daemon's periodic check: chain, checkpoint chain and key state (no MAC key)."""
    from pathlib import Path

    from secops.audit.log import audit_root_path
    from secops.audit.verify import check_key_state, verify
    from secops.keys.signature import load_public_key
    from secops.layout import StateDir

    state = StateDir(Path(cfg.paths.state_dir))
    if not (state.audit / "audit.jsonl").exists():
        return {"ok": True, "records": 0, "skipped": "no audit log yet"}
    pub = load_public_key(state.ed25519_pub) if state.ed25519_pub.exists() else None
    root = audit_root_path(state.root)
    report = verify(state.audit, public_key=pub,
                    roots=[load_public_key(root)] if root.exists() else [], live=True)
    check_key_state(report, state.root)
    return report.as_json()
