"""Run a playbook's step graph on one event: timeouts, bounded retries, approvals,
conditions, parallel branches; every step's start and end (inputs and outputs hashed) in the
audit log and the incident's timeline. A dry run walks the whole graph and touches nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from secops.config.schema import Config
from secops.playbooks.catalog import CATALOG
from secops.playbooks.incidents import Incident, IncidentStore
from secops.playbooks.model import REF, Condition, Playbook, Step

Log = Callable[[str, str], None]


@dataclass
class Context:
    cfg: Config
    playbook: Playbook
    event: dict[str, Any]
    incident: Incident | None = None
    store: IncidentStore | None = None
    dry_run: bool = False
    log: Log = lambda level, msg: None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    approval_poll_s: float = 1.0

    @property
    def incident_id(self) -> str:
        return self.incident.id if self.incident is not None else "(dry run)"

    def values(self) -> dict[str, Any]:
        folder = str(self.store.folder(self.incident.id)) if self.store and self.incident \
            else None
        opened = self.incident.opened if self.incident else time.time()
        return {
            "event": self.event, "vars": self.playbook.variables,
            "incident": {"id": self.incident_id, "folder": folder,
                         "state": self.incident.state if self.incident else None,
                         "opened": _local(opened), "deadline_72h": _local(opened + 72 * 3600)},
            "office": {"name": self.cfg.office.name, "code": self.cfg.office.code},
            "steps": {k: {"outputs": v} for k, v in self.outputs.items()},
        }


@dataclass
class StepRecord:
    step: str
    type: str
    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    would: str | None = None      # dry run: what it would do

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "type": self.type, "ok": self.ok, "error": self.error,
                "seconds": round(self.seconds, 3), "would": self.would,
                "outputs": self.outputs}


def _local(ts: float) -> str:
    """A time people read in a message: local time with its offset."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M %z")


class UnknownValue(KeyError):
    pass


def lookup(values: dict[str, Any], dotted: str) -> Any:
    cur: Any = values
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise UnknownValue(dotted)
    return cur


def resolve(value: Any, values: dict[str, Any]) -> Any:
    """``{a.b}`` references: a string that is one reference keeps the value's type."""
    if isinstance(value, dict):
        return {k: resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = REF.fullmatch(value)
    if whole:
        return lookup(values, whole.group(1))

    def text(m: Any) -> str:
        got = lookup(values, m.group(1))
        return ", ".join(map(str, got)) if isinstance(got, list) else str(got)

    return REF.sub(text, value)


def holds(cond: Condition, event: dict[str, Any], variables: dict[str, Any]) -> bool:
    scope = {**event, "vars": variables}
    try:
        got = lookup(scope, cond.field)
    except UnknownValue:
        return cond.op == "exists" and cond.value is False
    want = cond.value
    try:
        if cond.op == "exists":
            return want is not False
        if cond.op == "==":
            return bool(got == want)
        if cond.op == "!=":
            return bool(got != want)
        if cond.op == "in":
            return isinstance(want, list) and got in want
        if cond.op == "contains":
            return want in got if isinstance(got, (list, str, dict)) else False
        if cond.op == "matches":  # a glob, against a string or any string of a list
            import fnmatch

            items = got if isinstance(got, list) else [got]
            return any(isinstance(i, str) and fnmatch.fnmatchcase(i, str(want))
                       for i in items)
        return bool({">": got > want, ">=": got >= want, "<": got < want,
                     "<=": got <= want}[cond.op])
    except TypeError:
        return False


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()


Action = Callable[[Context, dict[str, Any]], dict[str, Any]]
Plan = Callable[[Context, dict[str, Any]], str]


class Runner:
    def __init__(self, ctx: Context, actions: dict[str, tuple[Action, Plan]]) -> None:
        self.ctx = ctx
        self.actions = actions
        self.records: list[StepRecord] = []
        self._lock = threading.Lock()

    # -- entry points ----------------------------------------------------------------------

    def run(self) -> list[StepRecord]:
        if self.ctx.dry_run:
            return self._walk_dry()
        self._chain(self.ctx.playbook.steps[0].id)
        return self.records

    def ok(self) -> bool:
        return all(r.ok for r in self.records)

    # -- real runs -------------------------------------------------------------------------

    def _chain(self, name: str | None) -> bool:
        ok = True
        while name is not None and not self.ctx.stop.is_set():
            step = self.ctx.playbook.step(name)
            ok, name = self._step(step)
        return ok

    def _step(self, step: Step) -> tuple[bool, str | None]:
        if step.type == "end":
            self._record(StepRecord(step.id, "end", True))
            self._set_state(step.state, step.id)
            return True, None
        if step.type == "if":
            assert step.condition is not None
            taken = holds(step.condition, self.ctx.event, self.ctx.playbook.variables)
            self._record(StepRecord(step.id, "if", True, {"condition": taken}))
            return True, step.then if taken else step.else_
        if step.type == "parallel":
            return self._parallel(step)
        if step.type == "approval":
            return self._approval(step)
        return self._action(step)

    def _action(self, step: Step) -> tuple[bool, str | None]:
        spec = CATALOG[step.action or ""]
        run, _plan = self.actions[spec.name]
        started = time.monotonic()
        try:
            inputs = resolve(step.args, self.ctx.values())
        except UnknownValue as e:
            rec = StepRecord(step.id, "action", False, error=f"unknown value {{{e.args[0]}}}")
            self._record(rec)
            return False, step.on_failure
        self._audit("playbook.step.started", {"step": step.id, "action": spec.name,
                                               "inputs_sha256": digest(inputs)})
        timeout = min(step.timeout_seconds or self.ctx.cfg.playbooks.max_step_seconds,
                      self.ctx.cfg.playbooks.max_step_seconds)
        attempts = 1 + (step.retries if spec.idempotent else 0)
        outputs: dict[str, Any] = {}
        error: str | None = None
        for attempt in range(attempts):
            outputs, error = _with_timeout(lambda: run(self.ctx, inputs), timeout)
            if error is None:
                break
            if attempt + 1 < attempts:
                self.ctx.log("WARNING", f"{self.ctx.playbook.id}/{step.id}: {error}; "
                             f"retry {attempt + 1} of {step.retries}")
                self.ctx.stop.wait(min(2.0 ** attempt, 30.0))
        ok = error is None
        rec = StepRecord(step.id, "action", ok, outputs, error, time.monotonic() - started)
        self._record(rec)
        self._audit("playbook.step.finished", {
            "step": step.id, "action": spec.name, "ok": ok, "error": error,
            "inputs_sha256": digest(inputs), "outputs_sha256": digest(outputs),
            "seconds": round(rec.seconds, 3)})
        with self._lock:
            self.ctx.outputs[step.id] = outputs
        if ok and spec.contains:
            self._set_state("contained", step.id)
        if ok:
            self._set_state(step.state, step.id)
        return ok, step.on_success if ok else step.on_failure

    def _parallel(self, step: Step) -> tuple[bool, str | None]:
        results: dict[str, bool] = {}

        def branch(name: str) -> None:
            try:
                results[name] = self._chain(name)
            except Exception as e:  # a branch's bug fails the branch, not the run
                self.ctx.log("ERROR", f"{self.ctx.playbook.id}/{name}: {e!r}")
                results[name] = False

        threads = [threading.Thread(target=branch, args=(b,), daemon=True)
                   for b in step.branches]
        for t in threads:
            t.start()
        deadline = time.monotonic() + (step.timeout_seconds or
                                       self.ctx.cfg.playbooks.max_step_seconds)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        ok = all(results.get(b, False) for b in step.branches)
        self._record(StepRecord(step.id, "parallel", ok, {"branches": results},
                                None if ok else "a branch failed or timed out"))
        return ok, step.on_success if ok else step.on_failure

    def _approval(self, step: Step) -> tuple[bool, str | None]:
        store, incident = self.ctx.store, self.ctx.incident
        assert store is not None and incident is not None
        ttl = (step.ttl_minutes or 60.0) * 60
        prompt = resolve(step.prompt or f"Approve step {step.id}?", self.ctx.values())
        store.request_approval(incident.id, step.id, str(prompt), ttl)
        self._audit("playbook.approval.requested", {"step": step.id, "ttl_s": ttl})
        self.ctx.log("WARNING", f"incident {incident.id}: waiting for approval: "
                     f"secops incident approve {incident.id} {step.id}")
        state = "waiting"
        while state == "waiting" and not self.ctx.stop.is_set():
            self.ctx.stop.wait(self.ctx.approval_poll_s)
            state = store.approval(incident.id, step.id) or "waiting"
        self._record(StepRecord(step.id, "approval", state == "approved", {"decision": state}))
        self._audit("playbook.approval.decided", {"step": step.id, "decision": state})
        if state == "approved":
            return True, step.on_success
        if state == "expired":
            return False, step.on_expiry or step.on_failure
        return False, step.on_failure

    # -- dry runs --------------------------------------------------------------------------

    def _walk_dry(self) -> list[StepRecord]:
        """Every reachable step in graph order, with what it would do; no side effect."""
        seen: set[str] = set()
        order: list[str] = []
        queue = [self.ctx.playbook.steps[0].id]
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            order.append(name)
            queue.extend(self.ctx.playbook.step(name).successors())
        values = self.ctx.values()
        for name in order:
            s = self.ctx.playbook.step(name)
            self.records.append(StepRecord(s.id, s.type, True, would=self._would(s, values)))
        return self.records

    def _would(self, s: Step, values: dict[str, Any]) -> str:
        after = f"; then {s.on_success or 'end'}" + (f", on failure {s.on_failure}"
                                                     if s.on_failure else "")
        if s.type == "end":
            return "end the run" + (f" and set the incident to {s.state}" if s.state else "")
        if s.type == "if":
            assert s.condition is not None
            taken = holds(s.condition, self.ctx.event, self.ctx.playbook.variables)
            return (f"test {s.condition.field} {s.condition.op} {s.condition.value!r}: "
                    f"{taken} for this event, so go to {s.then if taken else s.else_}")
        if s.type == "parallel":
            return f"run {', '.join(s.branches)} at the same time{after}"
        if s.type == "approval":
            return (f"wait up to {s.ttl_minutes:g} min for 'secops incident approve ID "
                    f"{s.id}'; on expiry go to {s.on_expiry or s.on_failure or 'end'}{after}")
        spec = CATALOG[s.action or ""]
        try:
            inputs = resolve(s.args, values)
            text = self.actions[spec.name][1](self.ctx, inputs)
        except UnknownValue as e:
            text = f"{spec.name} (needs {{{e.args[0]}}}, known at run time)"
        retry = f", up to {s.retries} retries" if s.retries else ""
        return f"{text}{retry}{after}"

    # -- records ---------------------------------------------------------------------------

    def _record(self, rec: StepRecord) -> None:
        with self._lock:
            self.records.append(rec)
        if self.ctx.store is not None and self.ctx.incident is not None:
            self.ctx.store.note(self.ctx.incident.id, "step", {
                "playbook": self.ctx.playbook.id, **rec.as_json()})

    def _set_state(self, state: str | None, step: str) -> None:
        if state and self.ctx.store is not None and self.ctx.incident is not None:
            self.ctx.store.advance(self.ctx.incident.id, state,
                                   f"playbook:{self.ctx.playbook.id}/{step}")

    def _audit(self, kind: str, data: dict[str, Any]) -> None:
        from secops.audit import record_safely

        record_safely(self.ctx.cfg.paths.state_dir, self.ctx.cfg.office.code, kind,
                      {"incident": self.ctx.incident_id, "playbook": self.ctx.playbook.id,
                       "version": self.ctx.playbook.version, **data},
                      actor=f"playbook:{self.ctx.playbook.id}")


def _with_timeout(fn: Callable[[], dict[str, Any]], timeout: float
                  ) -> tuple[dict[str, Any], str | None]:
    """Run ``fn`` in a thread; (outputs, None) or ({}, error). A timed-out action is left
    to finish on its own (a thread cannot be killed); its outputs are ignored."""
    from secops.errors import SecopsError

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = fn()
        except SecopsError as e:
            box["err"] = str(e)
        except Exception as e:  # an action's bug fails the step, never the daemon
            box["err"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return {}, f"timed out after {timeout:g} s"
    if "err" in box:
        return {}, str(box["err"])
    out = box.get("out") or {}
    return (out if isinstance(out, dict) else {"result": out}), None
