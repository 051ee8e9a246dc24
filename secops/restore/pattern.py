"""restic's ``--include`` patterns, as restic 0.14 matches them (pure).

An absolute pattern is cleaned (``filepath.Clean``) and cut into components; a path matches
when its first components match the pattern's, one by one, with Go's ``filepath.Match``
globbing (``*``, ``?``, ``[a-z]``, ``[^a]``, ``\\`` escapes). A pattern that matches a folder
therefore takes everything below it, and a ``**`` component stands for any number of
components (none included). See restic's ``internal/filter/filter.go``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

_META = "*?[\\"
# a component restic compares as plain text (its ``isSimple``)
_SIMPLE = re.compile(r"[^\\\[\]*?]*")


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, as handed to restic
    parts: tuple[re.Pattern[str] | None, ...]  # None: ``**``
    literal: tuple[str, ...]  # the leading components that name exactly one thing


def clean(text: str) -> str:
    """Go's ``filepath.Clean`` for an absolute path."""
    p = posixpath.normpath(text)
    return "/" + p.lstrip("/") if p.startswith("//") else p


def parse(text: str) -> Pattern:
    """An absolute restic include pattern; ``ValueError`` says what is wrong with it."""
    if not text.startswith("/"):
        raise ValueError("not an absolute path")
    cleaned = clean(text)
    comps = [c for c in cleaned.split("/") if c]
    parts: list[re.Pattern[str] | None] = []
    literal: list[str] = []
    exact = True
    for c in comps:
        if c == "**":
            parts.append(None)
            exact = False
            continue
        parts.append(re.compile(_component(c), re.DOTALL))
        name = unescape(c)
        if exact and name is not None:
            literal.append(name)
        else:
            exact = False
    if not comps:
        exact = False  # "/" alone: restic treats it as "/**"
        parts.append(None)
    return Pattern(cleaned, tuple(parts), tuple(literal))


def escape(path: str) -> str:
    """A pattern that matches exactly ``path`` (and what lies below it)."""
    out = []
    for c in clean(path).split("/"):
        out.append(c if _SIMPLE.fullmatch(c) else re.sub(r"([\\\[\]*?])", r"\\\1", c))
    return "/".join(out) or "/"


def unescape(component: str) -> str | None:
    """The one name a component matches, or None when it is a glob."""
    if _SIMPLE.fullmatch(component):
        return component
    out, i = [], 0
    while i < len(component):
        c = component[i]
        if c == "\\" and i + 1 < len(component):
            out.append(component[i + 1])
            i += 2
        elif c in _META:
            return None
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matches(p: Pattern, path: str) -> bool:
    """Whether restic restores ``path`` (absolute) under pattern ``p``."""
    return _prefix(p.parts, [c for c in path.split("/") if c])


def matches_any(patterns: Sequence[Pattern], path: str) -> bool:
    return any(matches(p, path) for p in patterns)


def _prefix(parts: Sequence[re.Pattern[str] | None], comps: Sequence[str]) -> bool:
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    if head is None:
        return any(_prefix(rest, comps[k:]) for k in range(len(comps) + 1))
    return bool(comps) and head.fullmatch(comps[0]) is not None and _prefix(rest, comps[1:])


def _component(c: str) -> str:
    """Go's ``filepath.Match`` for one component, as a regular expression."""
    out, i, n = [], 0, len(c)
    while i < n:
        ch = c[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i >= n:
                raise ValueError(f"{c!r} ends in a lone backslash")
            out.append(re.escape(c[i]))
            i += 1
        elif ch == "[":
            cls, i = _char_class(c, i)
            out.append(cls)
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _char_class(c: str, i: int) -> tuple[str, int]:
    negate = i < len(c) and c[i] == "^"
    i += negate
    ranges: list[str] = []
    while True:
        if i < len(c) and c[i] == "]" and ranges:
            return "[" + "^" * negate + "".join(ranges) + "]", i + 1
        lo, i = _class_char(c, i)
        hi = lo
        if i < len(c) and c[i] == "-":
            hi, i = _class_char(c, i + 1)
        if lo > hi:
            raise ValueError(f"{c!r}: the range {lo}-{hi} is backwards")
        ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")


def _class_char(c: str, i: int) -> tuple[str, int]:
    if i >= len(c) or c[i] in "-]":
        raise ValueError(f"{c!r}: a character class is not closed or is empty")
    if c[i] == "\\":
        i += 1
        if i >= len(c):
            raise ValueError(f"{c!r}: a character class is not closed")
    return c[i], i + 1
