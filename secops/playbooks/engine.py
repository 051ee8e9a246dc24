"""Run a playbook's step graph on one event: timeouts, bounded retries, approvals,
conditions, parallel branches; every step's start and end (inputs and outputs hashed) in the
audit log and the incident's timeline. A dry run walks the whole graph and touches nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.clock import local_text
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
        """What ``{...}`` in a step's arguments may name, read when the step runs: times
        in local time with the zone; snapshot ids as they are now (``restic tag`` rewrites a
        snapshot under a new id)."""
        from secops.playbooks import notice

        folder = str(self.store.folder(self.incident.id)) if self.store and self.incident \
            else None
        opened = self.incident.opened if self.incident else time.time()
        regime = notice.regime_for(self.event, opened)
        due = notice.deadline(self.event, opened, regime)
        lang = self.cfg.office.language
        resolve = self._resolver()
        return {
            "event": self.event, "vars": self.playbook.variables,
            "incident": {"id": self.incident_id, "folder": folder,
                         "state": self.incident.state if self.incident else None,
                         "opened": local_text(opened),
                         "deadline_72h": local_text(due.at) if due else "",
                         "notice_basis": regime.breach_notice_citation(lang) or "",
                         "notice_form": regime.breach_form_citation(lang) or "",
                         "snapshots": self._snapshots_text(resolve)},
            "office": {"name": self.cfg.office.name, "code": self.cfg.office.code},
            "steps": {k: {"outputs": current_ids(v, resolve)}
                      for k, v in self.outputs.items()},
        }

    def _resolver(self) -> Resolve:
        from secops.backup import lineage

        db = Path(self.cfg.paths.state_dir) / "state.db"
        return lambda target, snapshot_id: lineage.current(db, target, snapshot_id)

    def _snapshots_text(self, resolve: Resolve) -> str:
        if self.store is None or self.incident is None:
            return ""
        return "; ".join(f"{s['target']}: {resolve(s['target'], s['snapshot_id'])[:8]}"
                         for s in self.store.snapshots(self.incident.id))


@dataclass
class StepRecord:
    step: str
    type: str
    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    would: str | None = None      # dry run: what it would do
    action: str | None = None     # an action step's action

    @property
    def waiting(self) -> bool:
        """An approval still unanswered when the run stopped (the daemon stopped): neither
        approved nor failed."""
        return self.type == "approval" and self.outputs.get("decision") == "waiting"

    def as_json(self) -> dict[str, Any]:
        doc = {"step": self.step, "type": self.type, "ok": self.ok, "error": self.error,
               "seconds": round(self.seconds, 3), "would": self.would,
               "outputs": self.outputs}
        return doc | ({"action": self.action} if self.action else {})


Resolve = Callable[[str, str], str]   # (target, snapshot id) -> the id it has now
_ID_KEYS = ("id", "snapshot_id", "snapshot", "safety_snapshot")


def current_ids(outputs: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    """A step's outputs with every snapshot id it names as it is now: ``pinned`` and
    ``snapshots`` ({target: ...}), a restore's ``snapshot``/``safety_snapshot`` (with its
    ``target``), a drill's {target: {"snapshot_id"}}; the id a pin had before its tagging
    (gone since) is left out. Pure given ``resolve``."""
    def one(target: str, value: Any) -> Any:
        return resolve(target, value) if isinstance(value, str) and value else value

    def entry(target: str, doc: Any) -> Any:
        if isinstance(doc, str):
            return one(target, doc)
        if not isinstance(doc, dict):
            return doc
        out = {k: one(target, v) if k in _ID_KEYS else v for k, v in doc.items()
               if k != "id_before_tagging"}   # an id that no longer names a snapshot
        if isinstance(out.get("id"), str) and "short_id" in out:
            out["short_id"] = out["id"][:8]
        return out

    out = dict(outputs)
    if isinstance(out.get("target"), str):
        out = entry(out["target"], out)
    for key in ("pinned", "snapshots"):
        if isinstance(out.get(key), dict):
            out[key] = {t: entry(t, v) for t, v in out[key].items()}
    for key, value in out.items():
        if isinstance(value, dict) and "snapshot_id" in value and key not in (
                "pinned", "snapshots"):
            out[key] = entry(key, value)
    return out


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
    from secops.pathtext import dumps  # a file name that is not UTF-8 hashes as b64:...

    return hashlib.sha256(dumps(value, sort_keys=True, default=str).encode()).hexdigest()


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
        """Every step succeeded (an approval left waiting by a stop is not a failure)."""
        return all(r.ok or r.waiting for r in self.records)

    def waiting(self) -> list[str]:
        return [r.step for r in self.records if r.waiting]

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
            rec = StepRecord(step.id, "action", False, error=f"unknown value {{{e.args[0]}}}",
                             action=spec.name)
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
        rec = StepRecord(step.id, "action", ok, outputs, error, time.monotonic() - started,
                         action=spec.name)
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
        if state == "waiting":   # the run stopped (the daemon stopped): nothing was decided
            return False, None
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
