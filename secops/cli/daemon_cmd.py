"""``secops run`` (the daemon, in the foreground) and ``secops status`` (human output in
local time with its zone; ``--json`` in UTC)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error
from secops.pathtext import display


def _logger(json_lines: bool) -> Any:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, serialize=json_lines, level="INFO",
               format="{time:YYYY-MM-DD HH:mm:ss} {level:<7} {message}")
    return logger


@click.command("run")
@click.option("--polling", is_flag=True, help="Poll instead of inotify (network file systems).")
@click.pass_obj
def run(app: AppContext, polling: bool) -> int:
    """The daemon, in the foreground (systemd Type=notify)."""
    return run_with_logging(app.config_path, app.log_json, polling)


def run_with_logging(path: Path, log_json: bool, polling: bool = False) -> int:
    from secops.config.loader import load_config
    from secops.daemon.service import run_daemon

    logger = _logger(log_json)

    def log(level: str, message: str) -> None:
        logger.log(level, message)

    return run_daemon(lambda: load_config(path), log, force_polling=polling)


def _daemon_state(info: dict[str, str | None], kept: dict[str, Any] | None = None) -> str:
    if kept is not None and kept.get("heartbeat") and kept.get("pid"):
        # state.db cannot take the heartbeat: the fallback file has it
        newer = str(kept["heartbeat"]) > str(info.get("heartbeat") or "")
        if newer:
            info = {"status": "running", "heartbeat": str(kept["heartbeat"]),
                    "pid": str(kept["pid"])}
    if info.get("status") != "running" or not info.get("heartbeat") or not info.get("pid"):
        return "stopped"
    beat = datetime.fromisoformat(str(info["heartbeat"]).replace("Z", "+00:00"))
    if (datetime.now(UTC) - beat).total_seconds() > 60:
        return "not responding"
    try:
        os.kill(int(str(info["pid"])), 0)
    except (ProcessLookupError, ValueError):
        return "stopped"
    except PermissionError:
        pass
    return "running"


def _kept_outside(cfg: Any, kept: dict[str, Any] | None
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """What the daemon could not record in state.db (its disk full, the database damaged):
    the failure, and its alerts newest first (``secops/daemon/fallback.py``)."""
    from secops.daemon import fallback

    if kept is None:
        return None, []
    alerts = [{"time": a.get("time"), "kind": a.get("kind"),
               "score": (a.get("details") or {}).get("score"),
               "paths": (a.get("details") or {}).get("paths", []),
               "details": {**(a.get("details") or {}), "kept_outside": True}}
              for a in reversed(kept["alerts"]) if isinstance(a, dict)]
    failure = {"since": kept.get("since"), "heartbeat": kept.get("heartbeat"),
               "kinds": sorted({str(a["kind"]) for a in alerts
                                if str(a["kind"]).startswith("state.")}),
               "file": str(fallback.path_for(cfg.paths.state_dir))}
    return failure, alerts


def status_doc(app: AppContext) -> dict[str, Any]:
    cfg = app.config()
    db_path = Path(cfg.paths.state_dir) / "state.db"
    from secops.daemon import fallback

    kept = fallback.read(cfg.paths.state_dir)
    failure, kept_alerts = _kept_outside(cfg, kept)
    if not db_path.exists():
        return _unknown_doc(cfg, "stopped", kept_alerts, failure)
    import sqlite3

    try:
        return _status_from(cfg, db_path, kept, failure, kept_alerts)
    except sqlite3.DatabaseError as e:
        if fallback.classify(e) != "state.corrupt":
            raise
        # the damage itself is what status must show, with what the daemon kept outside
        failure = failure or {"since": None, "heartbeat": None, "kinds": ["state.corrupt"],
                              "file": str(fallback.path_for(cfg.paths.state_dir))}
        # without the daemon's own fallback file its heartbeat is in the damaged database
        doc = _unknown_doc(cfg, _daemon_state({}, kept) if kept else "unknown", kept_alerts,
                           failure)
        doc["state_damaged"] = f"{db_path}: {e}"
        return doc


def _unknown_doc(cfg: Any, daemon: str, alerts: list[dict[str, Any]],
                 failure: dict[str, Any] | None) -> dict[str, Any]:
    """Status with nothing read from state.db (none yet, or damaged)."""
    return {"daemon": daemon,
            "targets": {t.name: {"last_snapshot_time": None, "last_ok": None,
                                 "last_error": None, "backing_up_since": None,
                                 "last_progress": None, "stalled": False}
                        for t in cfg.backup.targets},
            "pending_changes": 0, "open_incidents": 0, "alerts": alerts,
            "state_failure": failure, "integrity_monitor": _monitor(None, "stopped")}


def _status_from(cfg: Any, db_path: Path, kept: dict[str, Any] | None,
                 failure: dict[str, Any] | None,
                 kept_alerts: list[dict[str, Any]]) -> dict[str, Any]:
    from secops.daemon.state import StateDB

    db = StateDB(db_path)
    try:
        targets = {}
        daemon = _daemon_state(db.daemon_info(), kept)
        live = db.targets_live() if daemon == "running" else {}
        for t in cfg.backup.targets:
            st = db.target(t.name)
            last_ok = None if st.last_ok_time is None and st.last_error is None else \
                st.failing_since is None
            now = live.get(t.name) or {}
            targets[t.name] = {"last_snapshot_time": st.last_ok_time, "last_ok": last_ok,
                               "last_error": st.last_error if st.failing_since else None,
                               "backing_up_since": now.get("backing_up_since"),
                               "last_progress": now.get("last_progress"),
                               "stalled": bool(now.get("stalled"))}
        alerts = [{"time": e["time"], "kind": e["kind"], "score": e["details"].get("score"),
                   "paths": e["details"].get("paths", []), "details": e["details"]}
                  for e in db.recent_events(20)]
        alerts = kept_alerts + alerts
        from secops.playbooks.incidents import IncidentStore

        store = IncidentStore(db_path, cfg.office.code)
        try:
            open_incidents = store.open_count()
        finally:
            store.close()
        return {"daemon": daemon, "targets": targets,
                "pending_changes": db.pending_count(), "open_incidents": open_incidents,
                "alerts": alerts, "state_failure": failure,
                "integrity_monitor": _monitor(db.monitor_info(), daemon)}
    finally:
        db.close()


def _monitor(info: dict[str, Any] | None, daemon: str) -> dict[str, Any]:
    """The integrity monitor as the daemon last recorded it: ``status`` starting |
    running | stopped | off (None: never recorded), ``since``, ``error`` (why it died)."""
    doc = {"status": None, "since": None, "error": None, **(info or {})}
    if daemon != "running" and doc["status"] in ("starting", "running"):
        doc["status"] = "stopped"  # with the daemon (or the daemon was killed)
    return doc


@click.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(app: AppContext, as_json: bool) -> int:
    """Daemon up?, last backup per target, pending changes, open incidents."""
    doc = status_doc(app)
    damaged = doc.get("state_damaged")
    if damaged:  # exit 3, one line on stderr as for any damaged database; the rest below
        error(f"the state database is damaged: {display(damaged)}; keep it for the "
              "investigation (mv state.db state.db.damaged) and start the daemon again: it "
              "rescans the folders and backs them up")
    if as_json:
        emit_json(doc)
        return 3 if damaged else 0
    con = console()
    con.print(f"daemon: {doc['daemon']}; pending changes: {doc['pending_changes']}; "
              f"open incidents: {doc['open_incidents']}")
    failure = doc.get("state_failure")
    if failure:
        con.print(f"  [bold red]STATE NOT RECORDED[/] since {_local(failure['since'])}: "
                  f"{', '.join(failure['kinds']) or 'state.db failing'}; alerts are kept in "
                  f"{failure['file']} and the journal (journalctl -u secops)")
    mon = doc["integrity_monitor"]
    if doc["daemon"] == "running" and mon["error"]:
        from rich.markup import escape

        con.print(f"  [bold red]integrity monitor STOPPED[/] since {_local(mon['since'])}: "
                  "no ransomware detection or containment until the daemon restarts "
                  f"({escape(display(mon['error']))})")
    if damaged:
        con.print("  targets: unknown (their state is in the damaged database)")
    for name, t in ({} if damaged else doc["targets"]).items():
        state = {True: "[green]ok[/]", False: "[red]FAILING[/]", None: "never"}[t["last_ok"]]
        if t["stalled"]:
            state = "[bold red]STALLED[/]"
        busy = f"  backing up since {_local(t['backing_up_since'])}, last progress " \
            f"{_local(t['last_progress'])}" if t["backing_up_since"] else ""
        con.print(f"  {name:<12} {state}  last backup: {_local(t['last_snapshot_time'])}"
                  + busy + (f"  error: {t['last_error']}" if t["last_error"] else ""))
    for a in doc["alerts"][:10]:
        con.print(f"  {_local(a['time'])}  {a['kind']:<30} {_gist(a)}", markup=False,
                  highlight=False)
    if doc["alerts"]:
        con.print("  (all details: secops status --json)")
    return 3 if damaged else 0


def _local(iso: str | None) -> str:
    """ISO UTC (the JSON) as a person reads it: local time with its zone."""
    from secops.clock import local_text, parse_iso

    ts = parse_iso(iso)
    return local_text(ts, seconds=True) if ts is not None else (iso or "-")


def _gist(alert: dict[str, Any]) -> str:
    """One readable line of an alert's details (the JSON keeps everything)."""
    d = alert.get("details") or {}
    parts = []
    if alert.get("score") is not None:
        parts.append(f"score {alert['score']}")
    for key in ("target", "incident", "freeze_id", "first_bad_seq", "problem", "error",
                "reason"):
        if d.get(key) not in (None, "", []):
            parts.append(f"{key.replace('_', ' ')} {d[key]}")
    paths = alert.get("paths") or []
    if paths:
        parts.append(display(str(paths[0])) +
                     (f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""))
    text = "; ".join(str(p) for p in parts)
    return text if len(text) <= 110 else text[:107] + "..."


COMMANDS = [run, status]
