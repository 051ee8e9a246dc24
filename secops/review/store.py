"""The last review, kept as ``STATE_DIR/review/last.json`` (adapter): written atomically,
0600 in a 0700 folder; read back as :class:`Previous` for the difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from secops.files import atomic_write, ensure_private_dir
from secops.review.model import Review
from secops.review.score import Previous, score

MAX_BYTES = 4 << 20


def last_path(state_dir: Path) -> Path:
    return state_dir / "review" / "last.json"


def to_doc(review: Review) -> dict[str, Any]:
    """What is kept: every check with its status and evidence in both languages."""
    return {"time": review.time, "score": score(review.results),
            "duration_s": review.duration_s,
            "checks": [{"id": r.id, "severity": r.severity, "status": r.status,
                        "found": {"vi": r.found.vi, "en": r.found.en}}
                       for r in review.results]}


def save(state_dir: Path, review: Review) -> Path:
    path = last_path(state_dir)
    ensure_private_dir(path.parent)
    data = json.dumps(to_doc(review), ensure_ascii=False, indent=1).encode("utf-8", "replace")
    atomic_write(path, data, 0o600)
    return path


def from_doc(doc: Any) -> Previous | None:
    """A kept review; None for anything that is not one (a damaged or foreign file)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        return None
    statuses = {str(c["id"]): str(c["status"]) for c in doc["checks"]
                if isinstance(c, dict) and "id" in c and "status" in c}
    kept_score = doc.get("score")
    return Previous(time=str(doc.get("time") or ""),
                    score=kept_score if isinstance(kept_score, int) else None,
                    failed=frozenset(i for i, s in statuses.items() if s == "fail"),
                    statuses=statuses)


def load_last(state_dir: Path) -> Previous | None:
    """The previous review, or None (none yet, or unreadable: the next save replaces it)."""
    path = last_path(state_dir)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_BYTES:
        return None
    try:
        return from_doc(json.loads(data.decode("utf-8", "replace")))
    except ValueError:
        return None
