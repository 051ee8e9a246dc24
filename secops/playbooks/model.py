"""The playbook format (docs/playbooks.md): typed, unknown keys forbidden (pure)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

StepId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Severity = Literal["info", "low", "medium", "high", "critical"]
Op = Literal["==", "!=", ">", ">=", "<", "<=", "in", "contains", "exists", "matches"]
EventKind = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$|^\*$")]
State = Literal["open", "contained", "recovered", "closed"]
STATES: tuple[str, ...] = ("open", "contained", "recovered", "closed")
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class Condition(_Strict, kw_only=True, frozen=True):
    field: Annotated[str, msgspec.Meta(pattern=r"^(kind|severity|source|time|details|vars)"
                                               r"(\.[A-Za-z0-9_-]+)*$")]
    op: Op
    value: Any = None


class Threshold(_Strict, kw_only=True, frozen=True):
    count: Annotated[int, msgspec.Meta(ge=2, le=10_000)]
    within_minutes: Annotated[float, msgspec.Meta(gt=0)]


class Trigger(_Strict, kw_only=True, frozen=True):
    event: EventKind | Annotated[list[EventKind], msgspec.Meta(min_length=1)]
    where: list[Condition] = msgspec.field(default_factory=list)
    threshold: Threshold | None = None
    # event fields that tell incidents apart: an event joins an open incident of the
    # playbook only when these agree (e.g. ["details.source"]: each address its own block);
    # none: every event joins the playbook's open incident (a repeating alert)
    incident_per: list[Annotated[str, msgspec.Meta(
        pattern=r"^(kind|severity|source|details)(\.[A-Za-z0-9_-]+)*$")]] = msgspec.field(
        default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [self.event] if isinstance(self.event, str) else list(self.event)

    def matches_kind(self, kind: str) -> bool:
        for want in self.kinds:
            if want in ("*", kind) or \
                    (want.endswith(".*") and kind.startswith(want[:-1])):
                return True
        return False


class Step(_Strict, kw_only=True, frozen=True):
    id: StepId
    type: Literal["action", "approval", "if", "parallel", "end"] = "action"
    description: str | None = None
    # action
    action: str | None = None
    args: dict[str, Any] = msgspec.field(default_factory=dict, name="with")
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    retries: Annotated[int, msgspec.Meta(ge=0)] = 0
    # approval
    prompt: str | None = None
    ttl_minutes: Annotated[float, msgspec.Meta(gt=0)] | None = None
    on_expiry: StepId | None = None
    # if
    condition: Condition | None = None
    then: StepId | None = None
    else_: StepId | None = msgspec.field(default=None, name="else")
    # parallel
    branches: list[StepId] = msgspec.field(default_factory=list)
    # end (and any step): the incident's new state once the step succeeds
    state: State | None = None
    on_success: StepId | None = None
    on_failure: StepId | None = None

    def successors(self) -> list[str]:
        names = [self.on_success, self.on_failure, self.on_expiry, self.then, self.else_,
                 *self.branches]
        return [n for n in names if n]


class Playbook(_Strict, kw_only=True, frozen=True):
    id: StepId
    version: Annotated[int, msgspec.Meta(ge=1)]
    name: Annotated[str, msgspec.Meta(min_length=1)]
    description: str = ""
    severity: Severity
    trigger: Trigger
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    steps: Annotated[list[Step], msgspec.Meta(min_length=1)]
    # filled by the loader
    source: str = ""
    sha256: str = ""

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.id == name:
                return s
        raise KeyError(name)


# Fields a step type may carry (besides id, type, description, state, on_success, on_failure).
TYPE_FIELDS: dict[str, set[str]] = {
    "action": {"action", "args", "timeout_seconds", "retries"},
    "approval": {"prompt", "ttl_minutes", "on_expiry", "timeout_seconds"},
    "if": {"condition", "then", "else_"},
    "parallel": {"branches", "timeout_seconds"},
    "end": set(),
}
OPTIONAL_FIELDS = ("action", "args", "timeout_seconds", "retries", "prompt", "ttl_minutes",
                   "on_expiry", "condition", "then", "else_", "branches")
_YAML_NAMES = {"args": "with", "else_": "else"}
REF = re.compile(r"\{([a-z_]+(?:\.[A-Za-z0-9_-]+)*)\}")


def yaml_name(field: str) -> str:
    return _YAML_NAMES.get(field, field)
