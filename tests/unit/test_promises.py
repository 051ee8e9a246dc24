"""README's promises are word for word the ones docs/threat-model.md defends, in order."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_promises_match_the_threat_model() -> None:
    model = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    defended = re.findall(r'^### (\d+)\. "(.*)"$', model, re.M)
    section = readme.split("## Promises", 1)[1].split("\n## ", 1)[0]
    promised = re.findall(r"^(\d+)\. (.*)$", section, re.M)
    assert len(defended) >= 10
    assert promised == defended
