"""``secops demo``: the scripted tour on the demo configuration.

It generates the sample election folder, starts a local append-only "off-site" server
(``rclone serve restic --append-only``) when the config points at one on loopback, runs
``init`` and two backups (before and after a change), lists the snapshots, runs a drill on
every target and, with the integrity monitor on, lets the demo attacker
(:mod:`secops.demo.attack`) loose on the folder under the real daemon: detection,
containment, the pinned snapshot, ``unfreeze --kill`` and a verified restore.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from secops import process
from secops.backup.engine import Engine
from secops.backup.models import TargetResult
from secops.backup.targets import parse_repository
from secops.cli.render import console, human_bytes
from secops.clock import iso_utc
from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.demo.attack import MARKER, MARKER_TEXT
from secops.demo.sample import generate
from secops.errors import OperationalError, SecopsError, ToolMissing
from secops.provision import initialise


def run_tour(cfg: Config, keep_server: bool = False,
             then: Callable[[], int] | None = None) -> int:
    """The tour; with ``then``, the daemon runs afterwards while the demo server stays up."""
    con = console()
    root = Path(cfg.paths.watch[0])
    if not root.exists() or not any(root.iterdir()):
        stats = generate(root)
        (root / MARKER).write_text(MARKER_TEXT, encoding="utf-8")  # the attacker's licence
        con.print(f"[bold]1.[/] Sample election folder generated: {root} "
                  f"({stats.files} files, {human_bytes(stats.bytes)})")
    else:
        con.print(f"[bold]1.[/] Using the existing election folder {root}")
    with _offsite_servers(cfg, keep_server) as started:
        for url in started:
            con.print(f"[bold]2.[/] Off-site append-only server started: {url}")
        report = initialise(cfg, Engine.from_config(cfg))
        con.print(f"[bold]3.[/] secops init: {len(report.steps)} steps, "
                  f"{sum(s.status == 'created' for s in report.steps)} created, "
                  f"{len(report.failed)} failed")
        for step in report.failed:
            con.print(f"   [red]{step.what}: {step.detail}[/]")
        engine = Engine.from_config(cfg)
        ok = _backup(engine, "manual", "4.", "first backup")
        sheet = root / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
        if sheet.exists():
            with sheet.open("a", encoding="utf-8") as f:
                f.write(f"Ghi chú bổ sung lúc {time.strftime('%H:%M:%S')}\n")
            con.print(f"[bold]5.[/] Changed {sheet.relative_to(root)}")
        ok = _backup(engine, "change", "6.", "backup after the change") and ok
        snaps, failures = engine.snapshots()
        con.print(f"[bold]7.[/] {len(snaps)} snapshots across "
                  f"{len(cfg.backup.targets)} targets:")
        for s in snaps:
            con.print(f"   {s.target:<10} {s.short_id}  {s.time.astimezone():%H:%M:%S}  "
                      f"{', '.join(t for t in s.tags if t != 'secops')}")
        for name, e in failures:
            con.print(f"   [red]{name}: {e}[/]")
        drills_ok = _drills(cfg, engine)
        ok = ok and drills_ok
        if cfg.integrity.enabled and ok and not failures:
            from secops.demo.attack_tour import attack_step

            ok = attack_step(cfg, "9.")
        elif cfg.integrity.enabled:
            con.print("[bold]9.[/] An attack: [red]skipped[/], the backups or drills above "
                      "failed")
        code = 0 if ok and not failures and not report.failed else 3
        if then is not None:
            last = "10." if cfg.integrity.enabled else "9."
            con.print(f"[bold]{last}[/] The daemon now watches {root}: edit or add a file there "
                      "and a backup follows within seconds (Ctrl-C stops it).")
            return then() or code
        return code


def _drills(cfg: Config, engine: Engine) -> bool:
    """Step 8: a recovery drill on every target, verified against the signed manifest."""
    from secops.audit import record_safely
    from secops.clock import SystemClock
    from secops.restore.drill import run_drill

    con = console()
    con.print("[bold]8.[/] Recovery drills (restore, verify every file, signed report):")
    good = True
    for t in cfg.backup.targets:
        try:
            r = run_drill(cfg, engine, "latest", t.name, clock=SystemClock())
        except SecopsError as e:
            con.print(f"   {t.name:<10} [red]FAILED[/] {e}")
            good = False
            continue
        record_safely(cfg.paths.state_dir, cfg.office.code,   # as `secops drill` does
                      "drill.completed" if r["ok"] else "drill.failed",
                      {k: r.get(k) for k in ("target", "snapshot_id", "ok", "files_checked",
                                             "rto_s", "rpo_s", "report")})
        verdict = "[green]ok[/]" if r["ok"] else "[red]FAILED[/]"
        con.print(f"   {t.name:<10} {verdict} {r['files_checked']} files verified, "
                  f"RTO {r['rto_s']:.1f} s, report {r['report']}")
        good = good and bool(r["ok"])
    return good


def _backup(engine: Engine, reason: str, step: str, title: str) -> bool:
    con = console()
    started = time.time()
    results = engine.backup(reason=reason)
    _record(engine.cfg, results, started)
    con.print(f"[bold]{step}[/] {title}:")
    for r in results:
        if r.ok:
            con.print(f"   {r.target:<10} [green]ok[/] snapshot {(r.snapshot_id or '')[:8]}, "
                      f"{r.files_new} new, {r.files_changed} changed, "
                      f"{human_bytes(r.data_added)} added, {r.duration_s:.1f} s")
        else:
            con.print(f"   {r.target:<10} [red]FAILED[/] {r.error}")
    return all(r.ok for r in results)


@contextlib.contextmanager
def _offsite_servers(cfg: Config, keep: bool) -> Iterator[list[str]]:
    procs: list[subprocess.Popen[bytes]] = []
    started: list[str] = []
    try:
        for t in cfg.backup.targets:
            ep = parse_repository(t.repository)
            if ep.kind != "rest" or ep.host not in ("127.0.0.1", "localhost") or not ep.port:
                continue
            if _listening(ep.host, ep.port):
                continue
            folder = Path(cfg.paths.state_dir).parent / f"offsite-server-{t.name}"
            procs.append(_start_rclone(ep.host, ep.port, folder, t.append_only))
            started.append(t.repository)
        yield started
    finally:
        if not keep:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)


def _start_rclone(host: str, port: int, folder: Path, append_only: bool
                  ) -> subprocess.Popen[bytes]:
    if shutil.which("rclone") is None:
        raise ToolMissing("rclone is needed for the demo's off-site server",
                          hint="apt-get install rclone")
    folder.mkdir(parents=True, exist_ok=True)
    argv = ["rclone", "serve", "restic", "--addr", f"{host}:{port}", "--config", "/dev/null"]
    if append_only:
        argv.append("--append-only")
    proc = subprocess.Popen([*argv, str(folder)], env=process.base_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 15
    while not _listening(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise OperationalError(f"the demo off-site server on {host}:{port} did not start")
        time.sleep(0.1)
    return proc


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _record(cfg: Config, results: list[TargetResult], started: float) -> None:
    """The tour's backups count as the daemon's would: ``secops status`` shows them, and the
    integrity monitor pins one of them as the last snapshot before an attack."""
    from secops.daemon.state import record_results

    db = StateDB(Path(cfg.paths.state_dir) / "state.db", office=cfg.office.code)
    try:   # and in the audit log, as `secops backup now` records them
        db.ensure_targets(t.name for t in cfg.backup.targets)
        record_results(db, results, started=started, now=time.time(),
                       now_iso=iso_utc(datetime.now(UTC)),
                       retry_max=cfg.daemon.retry_max_seconds,
                       retry_min=cfg.daemon.retry_min_seconds, actor="cli")
    finally:
        db.close()
