"""Load and validate playbooks: safe YAML, typed structure, then the graph and the actions.

Every problem names the file, the line and the key: ``playbooks/x.yaml:14: steps[2].action:
unknown action 'wipe'``. Loading a folder returns the valid playbooks and the problems of the
others: one broken file never disables the rest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from secops.errors import UsageError
from secops.playbooks.catalog import CATALOG
from secops.playbooks.model import OPTIONAL_FIELDS, REF, TYPE_FIELDS, Playbook, yaml_name

Lines = dict[tuple[Any, ...], int]
_PATH = re.compile(r"`\$(?P<path>[^`]*)`")
_PART = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")


class PlaybookError(UsageError):
    """A playbook that cannot be used: exit 2, with file and line."""


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """Safe YAML (no tags, no objects) with the line of every key and item."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PlaybookError(str(Problem(file, line, "", f"not valid YAML: {e.problem}"))) \
            from None
    except yaml.YAMLError as e:
        raise PlaybookError(f"{file}:1: not valid YAML: {e}") from None
    lines: Lines = {}
    if node is not None:
        _lines(node, (), lines)
    return data, lines


def _lines(node: Any, path: tuple[Any, ...], lines: Lines) -> None:
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            lines[(*path, k)] = key.start_mark.line + 1
            _lines(value, (*path, k), lines)
            lines[(*path, k)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), lines)


def line_of(lines: Lines, path: Iterable[Any]) -> int:
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    return lines.get(p, 1)


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_text(text: str, file: str, max_step_seconds: float = 900.0, max_retries: int = 3
              ) -> Playbook:
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise PlaybookError(f"{file}:1: a playbook is a mapping (id, version, name, ...)")
    try:
        pb = msgspec.convert(data, Playbook, strict=True)
    except msgspec.ValidationError as e:
        raise PlaybookError(str(_typed_problem(file, str(e), lines))) from None
    pb = msgspec.structs.replace(pb, source=file,
                                 sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    problems = check(pb, lines, max_step_seconds, max_retries)
    if problems:
        raise PlaybookError("\n".join(str(p) for p in problems))
    return pb


def _typed_problem(file: str, message: str, lines: Lines) -> Problem:
    m = _PATH.search(message)
    path: list[Any] = []
    if m:
        for name, index in _PART.findall(m.group("path")):
            path.append(int(index) if index else name)
    text = re.sub(r"\s*-\s*at\s*$", "", _PATH.sub("", message)).rstrip(" -")
    unknown = re.match(r"Object contains unknown field `(?P<f>[^`]+)`", text)
    if unknown:
        path.append(unknown.group("f"))
        text = "unknown key"
    missing = re.match(r"Object missing required field `(?P<f>[^`]+)`", text)
    if missing:
        text = f"required key {missing.group('f')!r} is missing"
    text = text.replace("`", "'")
    if "got 'bool'" in text:
        text += " (YAML reads yes/no/on/off as true/false: quote the name)"
    return Problem(file, line_of(lines, path), _dotted(path), text)


def check(pb: Playbook, lines: Lines, max_step_seconds: float = 900.0,
          max_retries: int = 3) -> list[Problem]:
    """The graph, the step types' fields, the actions and their arguments, the references."""
    out: list[Problem] = []
    file = pb.source

    def bad(path: tuple[Any, ...], message: str) -> None:
        out.append(Problem(file, line_of(lines, path), _dotted(path), message))

    ids: dict[str, int] = {}
    for i, s in enumerate(pb.steps):
        if s.id in ids:
            bad(("steps", i, "id"), f"step id {s.id!r} is used twice")
        ids[s.id] = i
    for i, s in enumerate(pb.steps):
        where: tuple[Any, ...] = ("steps", i)
        allowed = TYPE_FIELDS[s.type]
        for name in OPTIONAL_FIELDS:
            value = getattr(s, name)
            if value not in (None, {}, [], 0) and name not in allowed:
                bad((*where, yaml_name(name)), f"not allowed in a {s.type!r} step")
        for ref in s.successors():
            if ref not in ids:
                bad(where, f"names step {ref!r}, which does not exist")
        if s.type == "action":
            _check_action(s, where, bad, max_step_seconds, max_retries)
        elif s.type == "approval" and s.ttl_minutes is None:
            bad(where, "an approval needs ttl_minutes (what happens when nobody answers)")
        elif s.type == "if" and (s.condition is None or not s.then or not s.else_):
            bad(where, "an 'if' step needs condition, then and else")
        elif s.type == "parallel" and len(s.branches) < 2:
            bad(where, "a 'parallel' step needs at least two branches")
        _check_refs(pb, s.args, (*where, "with"), bad)
    if not out:
        out += _check_graph(pb, ids, lines)
    return out


def _check_action(s: Any, where: tuple[Any, ...], bad: Any, max_step_seconds: float,
                  max_retries: int) -> None:
    spec = CATALOG.get(s.action or "")
    if spec is None:
        known = ", ".join(sorted(CATALOG))
        bad((*where, "action"), f"unknown action {s.action!r} (actions: {known})"
            if s.action else f"an action step needs 'action' (one of: {known})")
        return
    for name in s.args:
        if name not in spec.args:
            bad((*where, "with", name), f"action {spec.name!r} takes no {name!r} "
                f"(it takes: {', '.join(spec.args)})")
    for name in spec.required - set(s.args):
        bad((*where, "with"), f"action {spec.name!r} needs {name!r}")
    if s.retries and not spec.idempotent:
        bad((*where, "retries"), f"action {spec.name!r} is not idempotent: it may not be "
            "retried")
    elif s.retries > max_retries:
        bad((*where, "retries"), f"at most {max_retries} ([playbooks] max_retries)")


def _check_refs(pb: Playbook, value: Any, where: tuple[Any, ...], bad: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_refs(pb, v, (*where, k), bad)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_refs(pb, v, (*where, i), bad)
    elif isinstance(value, str):
        for ref in REF.findall(value):
            head, _, rest = ref.partition(".")
            if head not in ("event", "vars", "incident", "office", "steps"):
                bad(where, f"{{{ref}}}: names nothing (event, vars, incident, office, steps)")
            elif head == "vars" and rest.split(".")[0] not in pb.variables:
                bad(where, f"{{{ref}}}: no variable {rest.split('.')[0]!r}")
            elif head == "steps" and rest.split(".")[0] not in {s.id for s in pb.steps}:
                bad(where, f"{{{ref}}}: no step {rest.split('.')[0]!r}")


def _check_graph(pb: Playbook, ids: dict[str, int], lines: Lines) -> list[Problem]:
    """Every step reachable from the first; no cycle (a run always ends)."""
    out = []
    seen: set[str] = set()
    stack = [pb.steps[0].id]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(pb.step(name).successors())
    for s in pb.steps:
        if s.id not in seen:
            i = ids[s.id]
            out.append(Problem(pb.source, line_of(lines, ("steps", i)), f"steps[{i}]",
                               f"step {s.id!r} can never be reached from the first step"))
    state: dict[str, int] = {}

    def visit(name: str) -> str | None:
        state[name] = 1
        for nxt in pb.step(name).successors():
            if state.get(nxt) == 1:
                return nxt
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[name] = 2
        return None

    loop = visit(pb.steps[0].id)
    if loop is not None:
        i = ids[loop]
        out.append(Problem(pb.source, line_of(lines, ("steps", i)), f"steps[{i}]",
                           f"the steps loop back to {loop!r}: a run must always end"))
    return out


def load_file(path: Path, max_step_seconds: float = 900.0, max_retries: int = 3) -> Playbook:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlaybookError(f"{path}: cannot be read: {e}") from None
    return load_text(text, str(path), max_step_seconds, max_retries)


def load_dir(folder: Path, max_step_seconds: float = 900.0, max_retries: int = 3
             ) -> tuple[list[Playbook], list[str]]:
    """(valid playbooks, problems of the others); two playbooks with one id: both refused."""
    valid: list[Playbook] = []
    problems: list[str] = []
    if not folder.is_dir():
        return [], [f"{folder}: the playbook folder does not exist"]
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            valid.append(load_file(path, max_step_seconds, max_retries))
        except PlaybookError as e:
            problems.append(e.message)
    by_id: dict[str, list[Playbook]] = {}
    for pb in valid:
        by_id.setdefault(pb.id, []).append(pb)
    for pid, group in by_id.items():
        if len(group) > 1:
            problems.append(f"playbook id {pid!r} is used by {', '.join(p.source for p in group)}"
                            ": none of them is used")
    return [pb for pb in valid if len(by_id[pb.id]) == 1], problems
