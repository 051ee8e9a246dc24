"""The review for people and scripts, in Vietnamese or English (pure): the JSON document,
the table rows of what failed (worst first), and the summary line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secops.review.model import SEVERITIES, Lang, Result, Review, Severity, Status
from secops.review.score import Diff

SEVERITY_WORDS: dict[Lang, dict[Severity, str]] = {
    "vi": {"critical": "nghiêm trọng", "high": "cao", "medium": "trung bình", "low": "thấp",
           "info": "thông tin"},
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low",
           "info": "info"},
}
STATUS_WORDS: dict[Lang, dict[Status, str]] = {
    "vi": {"pass": "đạt", "fail": "không đạt", "unknown": "không rõ",
           "not_applicable": "không áp dụng"},
    "en": {"pass": "pass", "fail": "fail", "unknown": "unknown",
           "not_applicable": "not applicable"},
}
HEADERS: dict[Lang, tuple[str, str, str, str]] = {
    "vi": ("Mức độ", "Kiểm tra", "Phát hiện", "Cách khắc phục"),
    "en": ("Severity", "Check", "Found", "Fix"),
}


@dataclass(frozen=True)
class Row:
    severity: Severity
    severity_text: str
    check: str          # id and title
    found: str
    why: str
    fix: str


def document(review: Review, diff: Diff, lang: Lang) -> dict[str, Any]:
    """``review --json``: times in UTC with Z, texts in ``lang``."""
    return {"time": review.time, "score": diff.score, "previous_score": diff.previous_score,
            "previous_time": diff.previous_time, "duration_s": review.duration_s,
            "checks": [{"id": r.id, "severity": r.severity, "status": r.status,
                        "title": r.spec.title.get(lang), "found": r.found.get(lang),
                        "why": r.spec.why.get(lang), "fix": r.spec.fix.get(lang)}
                       for r in review.results],
            "new": list(diff.new), "fixed": list(diff.fixed)}


def _order(r: Result) -> tuple[int, str]:
    return SEVERITIES.index(r.severity), r.id


MORE: dict[Lang, str] = {"vi": " … (đầy đủ: secops review --json)",
                         "en": " … (all of it: secops review --json)"}


def cut(text: str, lang: Lang, limit: int | None) -> str:
    """``text`` cut to about ``limit`` characters for a table (None: whole)."""
    if limit is None or len(text) <= limit:
        return text
    return text[:limit].rstrip("; ") + MORE[lang]


def rows(review: Review, lang: Lang, status: Status = "fail",
         limit: int | None = None) -> list[Row]:
    """The checks with ``status``, worst severity first; found cut to ``limit``."""
    return [Row(r.severity, SEVERITY_WORDS[lang][r.severity],
                f"{r.id}: {r.spec.title.get(lang)}", cut(r.found.get(lang), lang, limit),
                r.spec.why.get(lang), r.spec.fix.get(lang))
            for r in sorted(review.results, key=_order) if r.status == status]


def counts(review: Review) -> dict[Status, int]:
    out: dict[Status, int] = {"pass": 0, "fail": 0, "unknown": 0, "not_applicable": 0}
    for r in review.results:
        out[r.status] += 1
    return out


def summary(review: Review, diff: Diff, lang: Lang) -> str:
    c = counts(review)
    shown = "-" if diff.score is None else str(diff.score)
    if lang == "vi":
        line = (f"Điểm {shown}/100; {len(review.results)} mục kiểm tra: {c['pass']} đạt, "
                f"{c['fail']} không đạt, {c['unknown']} không rõ, {c['not_applicable']} "
                f"không áp dụng ({review.duration_s:.1f} giây).")
        if diff.previous_time is None:
            return line + " Đây là lần rà soát đầu tiên."
        change = "" if diff.change is None else f" ({diff.change:+d})"
        return (line + f" So với lần trước (điểm {diff.previous_score}){change}: "
                f"{len(diff.new)} vấn đề mới, {len(diff.fixed)} vấn đề đã khắc phục.")
    line = (f"Score {shown}/100; {len(review.results)} checks: {c['pass']} passed, "
            f"{c['fail']} failed, {c['unknown']} unknown, {c['not_applicable']} not "
            f"applicable ({review.duration_s:.1f} s).")
    if diff.previous_time is None:
        return line + " This is the first review."
    change = "" if diff.change is None else f" ({diff.change:+d})"
    return (line + f" Since the last review (score {diff.previous_score}){change}: "
            f"{len(diff.new)} new, {len(diff.fixed)} fixed.")


def changes(diff: Diff, lang: Lang) -> list[str]:
    """One line each for the new and the fixed findings (none: nothing)."""
    out = []
    if diff.previous_time is not None and diff.new:
        out.append(("Mới: " if lang == "vi" else "New: ") + ", ".join(diff.new))
    if diff.fixed:
        out.append(("Đã khắc phục: " if lang == "vi" else "Fixed: ") + ", ".join(diff.fixed))
    return out


def blocking(review: Review) -> bool:
    """True when a check at severity high or critical failed (exit code 1)."""
    return any(r.status == "fail" and r.severity in ("critical", "high")
               for r in review.results)
