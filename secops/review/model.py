"""The values of a risk review (pure): what each check is, what it found, the whole review.

A check has a stable id (``ssh.root_login``), a severity, and its texts in Vietnamese and
English: a short title, why it matters, and the fix (the exact command or config line). A
probe (``secops/review/probes_*.py``) returns one :class:`Finding` per check id it covers;
the engine joins each finding to its :class:`Spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "high", "medium", "low", "info"]
Status = Literal["pass", "fail", "unknown", "not_applicable"]
Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
# what a failed check costs in the score; info checks inform and cost nothing
WEIGHTS: dict[Severity, int] = {"critical": 10, "high": 5, "medium": 3, "low": 1, "info": 0}
# at most this many items (users, files, ports) are named in one finding
MAX_LISTED = 200


@dataclass(frozen=True)
class Text:
    """One text in both languages."""

    vi: str
    en: str

    def get(self, lang: Lang) -> str:
        return self.vi if lang == "vi" else self.en


@dataclass(frozen=True)
class Spec:
    id: str
    severity: Severity
    title: Text
    why: Text
    fix: Text


@dataclass(frozen=True)
class Finding:
    """What a probe found for one check: the status and the concrete evidence."""

    id: str
    status: Status
    found: Text


@dataclass(frozen=True)
class Result:
    spec: Spec
    status: Status
    found: Text

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def severity(self) -> Severity:
        return self.spec.severity


@dataclass(frozen=True)
class Review:
    time: str                      # ISO 8601 UTC with Z
    results: tuple[Result, ...]
    duration_s: float = 0.0

    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == "fail"]

    def failed_ids(self) -> set[str]:
        return {r.id for r in self.failed()}


class Unknown(Exception):  # a status, not an error: the check could not run
    """Raised by a probe that cannot tell: every check it covers is ``unknown`` with this
    reason (a program missing or failing, a file unreadable or too large)."""

    def __init__(self, reason: Text) -> None:
        super().__init__(reason.en)
        self.reason = reason


class NotApplicable(Exception):  # a status: nothing here to check
    """Raised by a probe that finds nothing to check (no sshd_config, no smb.conf): every
    check it covers is ``not_applicable`` with this reason."""

    def __init__(self, reason: Text) -> None:
        super().__init__(reason.en)
        self.reason = reason


def spec(cid: str, severity: Severity, title: tuple[str, str], why: tuple[str, str],
         fix: tuple[str, str]) -> Spec:
    """A check's spec from (vi, en) pairs."""
    return Spec(cid, severity, Text(*title), Text(*why), Text(*fix))


def ok(cid: str, vi: str, en: str) -> Finding:
    return Finding(cid, "pass", Text(vi, en))


def bad(cid: str, vi: str, en: str) -> Finding:
    return Finding(cid, "fail", Text(vi, en))


def unknown(cid: str, vi: str, en: str) -> Finding:
    return Finding(cid, "unknown", Text(vi, en))


def na(cid: str, vi: str, en: str) -> Finding:
    return Finding(cid, "not_applicable", Text(vi, en))


def listing(items: list[str], limit: int = MAX_LISTED) -> Text:
    """Items joined with ``; `` and, past ``limit``, how many more there were."""
    shown = "; ".join(items[:limit])
    rest = len(items) - limit
    if rest <= 0:
        return Text(shown, shown)
    return Text(f"{shown}; và {rest} mục khác", f"{shown}; and {rest} more")


def judged(cid: str, bad_items: list[str], vi_bad: str, en_bad: str,  # noqa: PLR0917
           vi_ok: str, en_ok: str) -> Finding:
    """Fail naming ``bad_items`` (after the ``*_bad`` lead-in), else pass."""
    if not bad_items:
        return ok(cid, vi_ok, en_ok)
    items = listing(bad_items)
    return bad(cid, f"{vi_bad}: {items.vi}", f"{en_bad}: {items.en}")
