"""``secops drill``: restore into a scratch folder, verify, measure RTO and RPO, report."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from secops.backup.engine import Engine
from secops.clock import Clock, iso_utc
from secops.config.schema import Config
from secops.layout import StateDir
from secops.restore.history import record
from secops.restore.restore import ProgressFn, Request, run_restore


def run_drill(cfg: Config, engine: Engine, ref: str, target: str, *, clock: Clock,
              on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """One drill on one target; returns the DESIGN.md drill JSON (plus RPO and times)."""
    state = StateDir(Path(cfg.paths.state_dir))
    started_at = clock.now()
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    scratch = state.root / "drill-scratch" / f"{stamp}-{target}"
    start = time.monotonic()
    try:
        outcome = run_restore(cfg, engine, Request(ref, scratch, target=target, force=True,
                                                   delete_verified=True, scratch=True),
                              on_progress)
        rto = time.monotonic() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    v = outcome.verification
    report: dict[str, Any] = {
        "ok": v.ok, "snapshot_id": outcome.snapshot.id, "target": target,
        "files_checked": v.files_checked, "bytes": v.bytes,
        "mismatched": v.mismatched, "missing": v.missing, "problems": v.problems,
        "rto_s": round(rto, 3),
        "rpo_s": round((started_at - outcome.snapshot.time).total_seconds(), 1),
        "time": iso_utc(started_at), "snapshot_time": iso_utc(outcome.snapshot.time),
        "office": cfg.office.code, "office_name": cfg.office.name,
        "office_place": cfg.office.place,
        "manifest_signed_by": outcome.signed_by, "warnings": outcome.warnings,
    }
    from secops.reports.drill_report import write_report

    files = write_report(state, report, cfg.office.language, stamp, now=clock.now(),
                         signing=cfg.signing)
    report["report"] = files["json"]
    report["pdf"] = files.get("pdf")
    if "pades" in files:
        report["pades"] = files["pades"]
        if files["pades"].get("warning"):     # signed without the revocation data: why
            report["warnings"] = [*report["warnings"], f"PAdES: {files['pades']['warning']}"]
    if "print_error" in files:
        report["warnings"] = [*report["warnings"],
                              f"the printed report was not made: {files['print_error']}"]
    record(state.root / "state.db", report)
    return report
