"""Protected files in practice: which changes break a rule, with a diff where it helps.

Small protected text files (voter lists as CSV) keep a compressed shadow copy in the
baseline, so the event can show exactly which lines changed.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from secops.config.schema import Config
from secops.fim.baseline import Baseline, Record
from secops.fim.detect import TEXTUAL
from secops.fim.rules import Rule, build_rules, violated
from secops.fim.scan import FimChange


class Protected:
    def __init__(self, cfg: Config, baseline: Baseline) -> None:
        self.cfg = cfg
        self.baseline = baseline
        self.rules: list[Rule] = build_rules(
            [(r.paths, r.windows) for r in cfg.integrity.protect])

    def init_shadows(self, records: Iterable[Record]) -> None:
        """A shadow copy of each protected text file that has none yet (``records``: the
        baseline's, streamed; only the protected ones are held)."""
        if not self.rules:
            return
        wanted = [rec.path for rec in records if self._shadowable(rec.path, rec)]
        for path in wanted:
            if self.baseline.shadow(path) is None:
                with contextlib.suppress(OSError):
                    self.baseline.set_shadow(path, Path(path).read_bytes())

    def judge(self, changes: Sequence[FimChange], when: datetime, in_maintenance: bool
              ) -> list[dict[str, Any]]:
        """The changes that break a rule (as JSON, with diffs); shadows move on."""
        if not self.rules:
            return []
        bad: list[dict[str, Any]] = []
        for c in changes:
            paths = [c.path] + ([c.old_path] if c.old_path else [])
            rule = next((r for p in paths if (r := violated(
                self.rules, p, self.cfg.paths.watch, when, in_maintenance))), None)
            if rule is not None:
                entry = c.as_json()
                entry["rule"] = list(rule.patterns)
                entry["windows"] = [w.text for w in rule.windows]
                diff = self._diff(c)
                if diff:
                    entry["diff"] = diff
                bad.append(entry)
            if c.after is not None and self._shadowable(c.path, c.after):
                with contextlib.suppress(OSError):
                    self.baseline.set_shadow(c.path, Path(c.path).read_bytes())
            elif c.kind in ("deleted", "renamed"):
                self.baseline.set_shadow(c.old_path or c.path, None)
        return bad

    def _shadowable(self, path: str, rec: Record) -> bool:
        return rec.ftype in TEXTUAL and rec.size <= self.cfg.integrity.diff_max_bytes and \
            any(r.matches(path, self.cfg.paths.watch) for r in self.rules)

    def _diff(self, c: FimChange) -> str | None:
        if c.kind != "modified" or c.after is None or c.after.ftype not in TEXTUAL or \
                c.after.size > self.cfg.integrity.diff_max_bytes:
            return None
        old = self.baseline.shadow(c.path)
        if old is None:
            return None
        try:
            new = Path(c.path).read_bytes()
        except OSError:
            return None
        lines = difflib.unified_diff(old.decode("utf-8", "replace").splitlines(),
                                     new.decode("utf-8", "replace").splitlines(),
                                     "trước (before)", "sau (after)", lineterm="", n=1)
        return "\n".join(list(lines)[:200]) or None
