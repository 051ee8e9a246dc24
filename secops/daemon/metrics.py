"""A Prometheus textfile (node_exporter textfile-collector convention), written atomically."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.files import atomic_write


def metrics_path(cfg: Config) -> Path:
    if cfg.daemon.metrics_file:
        return Path(cfg.daemon.metrics_file)
    return Path(cfg.paths.state_dir) / "metrics" / "secops.prom"


def render(cfg: Config, db: StateDB) -> str:
    office = cfg.office.code
    lines = [
        "# HELP secops_last_success_timestamp_seconds Last successful backup per target.",
        "# TYPE secops_last_success_timestamp_seconds gauge",
    ]
    failing = []
    for t in cfg.backup.targets:
        st = db.target(t.name)
        ts = datetime.fromisoformat(st.last_ok_time.replace("Z", "+00:00")).timestamp() \
            if st.last_ok_time else 0
        lines.append(f'secops_last_success_timestamp_seconds{{office="{office}",'
                     f'target="{t.name}"}} {ts:.0f}')
        failing.append(f'secops_target_failing{{office="{office}",target="{t.name}"}} '
                       f"{1 if st.failing_since else 0}")
    lines += ["# HELP secops_target_failing 1 while the target's backups fail.",
              "# TYPE secops_target_failing gauge", *failing,
              "# HELP secops_pending_changes Changed files not yet in every target.",
              "# TYPE secops_pending_changes gauge",
              f'secops_pending_changes{{office="{office}"}} {db.pending_count()}',
              "# HELP secops_open_incidents Incidents not yet closed.",
              "# TYPE secops_open_incidents gauge",
              f'secops_open_incidents{{office="{office}"}} 0']
    return "\n".join(lines) + "\n"


def write_metrics(cfg: Config, db: StateDB) -> None:
    atomic_write(metrics_path(cfg), render(cfg, db).encode("utf-8"), 0o644)
