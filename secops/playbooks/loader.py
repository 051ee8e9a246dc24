"""Load and validate playbooks: safe YAML, typed structure, then the graph and the actions.

Every problem names the file, the line and the key: ``playbooks/x.yaml:14: steps[2].action:
unknown action 'wipe'``. Loading a folder returns the valid playbooks and the problems of the
others: one broken file never disables the rest.

Hostile files are refused in bounded time and memory: at most ``MAX_BYTES``, read only from
a regular file; no YAML anchors or aliases (an alias bomb expands 570 bytes into 10**9
nodes; playbooks need none); at most ``MAX_DEPTH`` levels and ``MAX_NODES`` nodes; at most
``MAX_STEPS`` steps. No walk of the document or of the step graph recurses.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from secops.errors import UsageError
from secops.playbooks.catalog import CATALOG
from secops.playbooks.model import OPTIONAL_FIELDS, REF, TYPE_FIELDS, Playbook, yaml_name

Lines = dict[tuple[Any, ...], int]
MAX_BYTES = 128 * 1024   # the largest shipped playbook is under 4 KiB
MAX_DEPTH = 32           # nesting of mappings and lists
MAX_NODES = 20_000       # scalars, mappings and lists in one document
MAX_STEPS = 200
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


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _loader(text: str) -> Any:
    """A SafeLoader that refuses anchors and aliases and caps depth and node count while it
    composes (before anything is expanded or constructed)."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            peek: Any = self.peek_event  # untyped in types-PyYAML
            event = peek()
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused(line, "anchors and aliases (&name, *name) are not allowed in "
                                     "a playbook: write the value out")
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _Refused(line, f"more than {MAX_NODES} values: not a playbook")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader(text)


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """Safe YAML (no tags, no objects, no anchors) with the line of every key and item."""
    import yaml

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise PlaybookError(f"{file}:1: {size} bytes: a playbook is at most "
                            f"{MAX_BYTES // 1024} KiB")
    try:
        loader = _loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _Refused as e:
        raise PlaybookError(str(Problem(file, e.line, "", e.message))) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PlaybookError(str(Problem(file, line, "", f"not valid YAML: {e.problem}"))) \
            from None
    except yaml.YAMLError as e:
        raise PlaybookError(f"{file}:1: not valid YAML: {e}") from None
    except (ValueError, OverflowError, TypeError, RecursionError) as e:
        # a constructor's own failure: a 5000-digit number, a 13th month in a date
        raise PlaybookError(f"{file}:1: not valid YAML: {e}") from None
    lines: Lines = {}
    if node is not None:
        _lines(node, lines)
    return data, lines


def _lines(root: Any, lines: Lines) -> None:
    """The line of every key and item, walked with a stack (no recursion)."""
    import yaml

    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
                lines[(*path, k)] = key.start_mark.line + 1  # a key's line, not its value's
                stack.append((value, (*path, k)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))


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

    if len(pb.steps) > MAX_STEPS:
        bad(("steps",), f"a playbook has at most {MAX_STEPS} steps (this one has "
            f"{len(pb.steps)}): split it, or let one step do more")
        return out
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


def _check_refs(pb: Playbook, root: Any, top: tuple[Any, ...], bad: Any) -> None:
    """Every ``{a.b}`` reference in a step's arguments names something (document order)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, top)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            stack.extend(reversed([(v, (*where, k)) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(v, (*where, i)) for i, v in enumerate(value)]))
        elif isinstance(value, str):
            _check_ref_text(pb, value, where, bad)


def _check_ref_text(pb: Playbook, value: str, where: tuple[Any, ...], bad: Any) -> None:
    for ref in REF.findall(value):
        head, _, rest = ref.partition(".")
        if head not in ("event", "vars", "incident", "office", "steps"):
            bad(where, f"{{{ref}}}: names nothing (event, vars, incident, office, steps)")
        elif head == "vars" and rest.split(".")[0] not in pb.variables:
            bad(where, f"{{{ref}}}: no variable {rest.split('.')[0]!r}")
        elif head == "steps" and rest.split(".")[0] not in {s.id for s in pb.steps}:
            bad(where, f"{{{ref}}}: no step {rest.split('.')[0]!r}")


def _check_graph(pb: Playbook, ids: dict[str, int], lines: Lines) -> list[Problem]:
    """Every step reachable from the first; no cycle (a run always ends). Both walks use a
    stack of their own: a long chain of steps never exhausts Python's."""
    out = []
    by_id = {s.id: s for s in pb.steps}
    seen: set[str] = set()
    stack = [pb.steps[0].id]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(by_id[name].successors())
    for s in pb.steps:
        if s.id not in seen:
            i = ids[s.id]
            out.append(Problem(pb.source, line_of(lines, ("steps", i)), f"steps[{i}]",
                               f"step {s.id!r} can never be reached from the first step"))
    loop = _first_loop(by_id, pb.steps[0].id)
    if loop is not None:
        i = ids[loop]
        out.append(Problem(pb.source, line_of(lines, ("steps", i)), f"steps[{i}]",
                           f"the steps loop back to {loop!r}: a run must always end"))
    return out


def _first_loop(by_id: dict[str, Any], start: str) -> str | None:
    """Depth-first from ``start`` (an explicit stack): the first step reached again while
    it is still on the path, or None."""
    state = {start: 1}                    # 1: on the current path, 2: done
    path = [(start, iter(by_id[start].successors()))]
    while path:
        name, todo = path[-1]
        nxt = next(todo, None)
        if nxt is None:
            state[name] = 2
            path.pop()
        elif state.get(nxt) == 1:
            return str(nxt)
        elif nxt not in state:
            state[nxt] = 1
            path.append((nxt, iter(by_id[nxt].successors())))
    return None


def read_playbook(path: Path) -> str:
    """The text of a regular file of at most MAX_BYTES (a FIFO or a device is never waited
    on or read without end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise PlaybookError(f"{path}: no such file") from None
    except OSError as e:
        raise PlaybookError(f"{path}: cannot be read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PlaybookError(f"{path}: not a regular file")
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise PlaybookError(f"{path}: cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise PlaybookError(f"{path}:1: {max(st.st_size, len(data))} bytes: a playbook is at "
                            f"most {MAX_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PlaybookError(f"{path}: cannot be read: not UTF-8 (byte {e.start})") from None


def load_file(path: Path, max_step_seconds: float = 900.0, max_retries: int = 3) -> Playbook:
    return load_text(read_playbook(path), str(path), max_step_seconds, max_retries)


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
        except Exception as e:  # a bug of ours on one file never stops the daemon or the rest
            problems.append(f"{path}: cannot be loaded ({type(e).__name__}: {e})")
    by_id: dict[str, list[Playbook]] = {}
    for pb in valid:
        by_id.setdefault(pb.id, []).append(pb)
    for pid, group in by_id.items():
        if len(group) > 1:
            problems.append(f"playbook id {pid!r} is used by {', '.join(p.source for p in group)}"
                            ": none of them is used")
    return [pb for pb in valid if len(by_id[pb.id]) == 1], problems
