"""The risk review of the office server (``secops review``; issue 16, part 3).

``run_review(cfg, root)`` runs every check and returns a :class:`Review`; ``compare`` gives
the difference from the review ``load_last`` reads, and ``save`` keeps the new one in
``STATE_DIR/review/last.json``. The daemon can call the same three functions.
"""

from __future__ import annotations

from secops.review.engine import SPECS, run_review
from secops.review.model import Result, Review
from secops.review.score import Diff, compare, score
from secops.review.store import load_last, save

__all__ = ["SPECS", "Diff", "Result", "Review", "compare", "load_last", "run_review", "save",
           "score"]
