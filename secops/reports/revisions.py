"""Numbered revisions of a printed report: a report that was written (and perhaps printed,
signed by hand, mailed) is never replaced; writing it again gives the next revision.

Revision 1 of ``weekly-2026-W11.vi`` is ``weekly-2026-W11.vi.pdf`` (and its .html, .json,
.pdf.asc); revision 2 is ``weekly-2026-W11.vi.r2.pdf``, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_REV = re.compile(r"\.r(\d+)$")


def stem(base: str, n: int) -> str:
    """The file stem of revision ``n`` of ``base``."""
    return base if n <= 1 else f"{base}.r{n}"


def existing(folder: Path, base: str, suffix: str) -> list[int]:
    """The revisions of ``base`` that have a ``suffix`` file, in order."""
    found = []
    if (folder / f"{base}{suffix}").exists():
        found.append(1)
    for p in folder.glob(f"{glob_escape(base)}.r*{glob_escape(suffix)}"):
        m = _REV.search(p.name[:-len(suffix)]) if p.name.endswith(suffix) else None
        if m is not None and p.name[:-len(suffix)] == f"{base}.r{m[1]}" and int(m[1]) > 1:
            found.append(int(m[1]))
    return sorted(found)


def next_free(folder: Path, base: str, suffixes: Sequence[str]) -> int:
    """The first revision after every one that has any of ``suffixes``."""
    used = [n for s in suffixes for n in existing(folder, base, s)]
    return max(used, default=0) + 1


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
