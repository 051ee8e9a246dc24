"""The daemon's weekly risk review: run, compare with the last one, keep it, and say which
checks newly failed at high or critical severity (each becomes a ``review.finding`` event)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from secops.review.engine import run_review
from secops.review.score import compare
from secops.review.store import load_last, save

if TYPE_CHECKING:
    from secops.clock import Clock
    from secops.config.schema import Config

ALERTED = ("critical", "high")


def run_periodic(cfg: Config, clock: Clock | None = None) -> dict[str, Any]:
    state = Path(cfg.paths.state_dir)
    review = run_review(cfg, clock=clock)
    diff = compare(load_last(state), review)
    save(state, review)
    new = set(diff.new)
    new_high = [{"check": r.id, "severity": r.severity, "found": r.found.en,
                 "found_vi": r.found.vi}
                for r in review.failed() if r.id in new and r.severity in ALERTED]
    return {"time": review.time, "score": diff.score, "previous_score": diff.previous_score,
            "new": list(diff.new), "fixed": list(diff.fixed), "new_high": new_high,
            "failed": sorted(review.failed_ids())}
