"""The review's score and its difference from the previous review (pure).

Score: 100 x (weight of the checks that passed) / (weight of the checks that ran), a check
that ran being one that passed or failed (``unknown`` and ``not_applicable`` count for
nothing either way); the weights are :data:`secops.review.model.WEIGHTS`. None when no
weighted check ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from secops.review.model import WEIGHTS, Result, Review


def score(results: Iterable[Result]) -> int | None:
    ran = passed = 0
    for r in results:
        if r.status not in ("pass", "fail"):
            continue
        weight = WEIGHTS[r.severity]
        ran += weight
        if r.status == "pass":
            passed += weight
    if ran == 0:
        return None
    return round(100 * passed / ran)


@dataclass(frozen=True)
class Previous:
    """What the last review left (``STATE_DIR/review/last.json``)."""

    time: str
    score: int | None
    failed: frozenset[str]
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Diff:
    previous_time: str | None
    previous_score: int | None
    score: int | None
    new: tuple[str, ...]      # failing now, not failing in the previous review
    fixed: tuple[str, ...]    # failing in the previous review, passing now

    @property
    def change(self) -> int | None:
        if self.score is None or self.previous_score is None:
            return None
        return self.score - self.previous_score


def compare(previous: Previous | None, review: Review) -> Diff:
    """New and fixed findings since ``previous`` (None: the first review, all failures are
    new). A check that failed before and is ``unknown`` now is neither fixed nor new."""
    now_failed = review.failed_ids()
    now_passed = {r.id for r in review.results if r.status in ("pass", "not_applicable")}
    current = score(review.results)
    if previous is None:
        return Diff(None, None, current, tuple(sorted(now_failed)), ())
    return Diff(previous.time, previous.score, current,
                tuple(sorted(now_failed - previous.failed)),
                tuple(sorted(previous.failed & now_passed)))
