"""Playbook loading (every problem with its file and line) and the engine's semantics:
timeouts, bounded retries, conditions, parallel branches, approvals, thresholds, values.

The engine runs here with stand-in actions (the real ones are exercised against real
programs in tests/integration/test_playbooks.py): a step that hangs or fails on demand is
what these tests need and no real action produces on demand.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from secops.config.loader import load_config
from secops.config.schema import Config
from secops.playbooks.engine import Context, Runner, holds, resolve
from secops.playbooks.incidents import IncidentStore
from secops.playbooks.loader import PlaybookError, load_dir, load_text
from secops.playbooks.model import Condition

REPO = Path(__file__).resolve().parents[2]
HEAD = """\
id: t
version: 1
name: "Thử"
severity: high
trigger:
  event: ransomware.suspected
variables:
  who: [office]
steps:
"""


def pb(steps: str, head: str = HEAD) -> Any:
    return load_text(head + steps, "t.yaml")


def problem(text: str) -> str:
    with pytest.raises(PlaybookError) as e:
        load_text(text, "t.yaml")
    return e.value.message


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    (tmp_path / "data").mkdir()
    c = tmp_path / "secops.toml"
    c.write_text('[office]\nname = "UBND xã Tân Kỳ"\ncode = "tan-ky"\n[paths]\n'
                 'state_dir = "state"\nwatch = ["data"]\n[backup]\n[[backup.targets]]\n'
                 'name = "local"\nrepository = "repo"\n[playbooks]\nmax_step_seconds = 2\n',
                 encoding="utf-8")
    return load_config(c)


# -- loading ---------------------------------------------------------------------------------

def test_every_shipped_playbook_loads() -> None:
    valid, problems = load_dir(REPO / "playbooks")
    assert problems == []
    assert len(valid) == len(list((REPO / "playbooks").glob("*.yaml"))) >= 8


@pytest.mark.parametrize("steps,line,expect", [
    ("  - id: a\n    action: wipe\n", 11, "steps[0].action: unknown action 'wipe'"),
    ("  - id: a\n    action: freeze\n    colour: red\n", 12, "steps[0].colour: unknown key"),
    ("  - id: a\n    action: freeze\n    on_success: b\n", 10, "names step 'b'"),
    ("  - id: a\n    action: notify\n    with: {to: x, subject: s, body: b}\n    retries: 1\n",
     13, "not idempotent"),
    ("  - id: a\n    action: notify\n    with: {to: x}\n", 12, "needs 'subject'"),
    ("  - id: a\n    action: freeze\n    with: {force: true}\n", 12,
     "steps[0].with.force: action 'freeze' takes no 'force'"),
    ("  - id: a\n    action: freeze\n  - id: a\n    type: end\n", 12, "used twice"),
    ("  - id: a\n    action: freeze\n  - id: b\n    type: end\n", 12, "never be reached"),
    ("  - id: a\n    action: freeze\n    on_success: b\n  - id: b\n    action: freeze\n"
     "    on_success: a\n", 10, "loop back"),
    ("  - id: a\n    type: approval\n", 10, "needs ttl_minutes"),
    ("  - id: a\n    type: end\n    action: freeze\n", 12, "not allowed in a 'end' step"),
    ("  - id: a\n    action: notify\n    with: {to: '{vars.nobody}', subject: s, body: b}\n",
     12, "no variable 'nobody'"),
])
def test_problems_name_the_file_and_line(steps: str, line: int, expect: str) -> None:
    msg = problem(HEAD + steps)
    assert msg.startswith(f"t.yaml:{line}:"), msg
    assert expect in msg


def test_yaml_booleans_as_step_names_are_explained() -> None:
    msg = problem(HEAD + "  - id: a\n    action: freeze\n    on_success: yes\n")
    assert msg.startswith("t.yaml:12: steps[0].on_success:") and "quote the name" in msg


def test_bad_yaml_and_unsafe_tags_are_refused() -> None:
    assert problem("id: [unclosed\n").startswith("t.yaml:")
    msg = problem(HEAD.replace('name: "Thử"', 'name: !!python/object/apply:os.system ["x"]'))
    assert "t.yaml:3:" in msg and "not valid YAML" in msg


def test_one_invalid_playbook_never_disables_the_others(tmp_path: Path) -> None:
    good = (REPO / "playbooks" / "backup-failing.yaml").read_text()
    (tmp_path / "a.yaml").write_text(good)
    (tmp_path / "b.yaml").write_text(good.replace("backup-failing", "other").replace(
        "action: notify", "action: nuke"))
    valid, problems = load_dir(tmp_path)
    assert [p.id for p in valid] == ["backup-failing"]
    assert len(problems) == 1 and "b.yaml" in problems[0]


# -- values and conditions -------------------------------------------------------------------

def test_values_keep_their_type_or_become_text() -> None:
    values = {"event": {"details": {"paths": ["/a", "/b"], "score": 4}}}
    assert resolve("{event.details.paths}", values) == ["/a", "/b"]
    assert resolve("x {event.details.paths} {event.details.score}", values) == "x /a, /b 4"
    assert resolve({"k": ["{event.details.score}"]}, values) == {"k": [4]}


@pytest.mark.parametrize("op,value,expect", [
    (">=", 3, True), (">", 4, False), ("==", 4, True), ("!=", 4, False), ("in", [1, 4], True),
    ("exists", True, True)])
def test_conditions(op: str, value: Any, expect: bool) -> None:
    event = {"kind": "x", "details": {"score": 4, "paths": ["/srv/danh-sach-cu-tri/a.csv"]}}
    assert holds(Condition(field="details.score", op=op, value=value), event, {}) is expect  # type: ignore[arg-type]
    assert holds(Condition(field="details.paths", op="matches", value="*danh-sach-cu-tri*"),
                 event, {})
    assert not holds(Condition(field="details.nothing", op=">", value=1), event, {})


# -- the engine ------------------------------------------------------------------------------

def stand_ins(calls: list[str], fail: set[str] | None = None, hang: set[str] | None = None,
              flaky: dict[str, int] | None = None) -> dict[str, Any]:
    from secops.errors import OperationalError

    fail, hang, flaky = fail or set(), hang or set(), flaky if flaky is not None else {}

    def make(name: str) -> Any:
        def run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
            calls.append(name)
            if name in hang:
                time.sleep(5)
            if name in fail:
                raise OperationalError(f"{name} failed")
            if flaky.get(name, 0) > 0:
                flaky[name] -= 1
                raise OperationalError(f"{name} flaked")
            return {"did": name, "args": args}

        return (run, lambda ctx, args, n=name: f"do {n}")

    from secops.playbooks.catalog import CATALOG

    return {n: make(n) for n in CATALOG}


def run(cfg: Config, playbook: Any, actions: dict[str, Any], store: IncidentStore | None = None,
        **kw: Any) -> tuple[Runner, Any]:
    event = {"kind": "ransomware.suspected", "time": "2026-03-15T07:00:00Z",
             "details": {"score": 5, "paths": ["/a"]}}
    incident = None
    if store is not None:
        incident, _ = store.open_or_join(playbook.id, event, playbook.severity)
    ctx = Context(cfg, playbook, event, incident=incident, store=store, **kw)
    r = Runner(ctx, actions)
    r.run()
    return r, incident


def test_success_and_failure_paths_and_states(cfg: Config, tmp_path: Path) -> None:
    p = pb("""  - id: a
    action: freeze
    on_success: b
    on_failure: x
  - id: b
    action: snapshot
    on_success: ok
    on_failure: x
  - id: ok
    type: end
    state: recovered
  - id: x
    type: end
""")
    store = IncidentStore(tmp_path / "s.db", "tan-ky")
    calls: list[str] = []
    r, inc = run(cfg, p, stand_ins(calls), store)
    assert calls == ["freeze", "snapshot"] and r.ok()
    assert store.get(inc.id).state == "recovered"  # freeze contained it, then the end
    calls2: list[str] = []
    r2, _ = run(cfg, pb(p.source and (HEAD + """  - id: a
    action: freeze
    on_success: b
  - id: b
    action: snapshot
""")), stand_ins(calls2, fail={"freeze"}))
    assert calls2 == ["freeze"] and not r2.ok()  # no on_failure: the run ends there


def test_timeout_retries_and_idempotence(cfg: Config) -> None:
    calls: list[str] = []
    r, _ = run(cfg, pb("  - id: a\n    action: snapshot\n    retries: 2\n"),
               stand_ins(calls, flaky={"snapshot": 2}))
    assert calls == ["snapshot"] * 3 and r.ok()  # two failures, then success
    calls = []
    started = time.monotonic()
    r, _ = run(cfg, pb("  - id: a\n    action: freeze\n    timeout_seconds: 60\n"),
               stand_ins(calls, hang={"freeze"}))
    assert not r.ok() and "timed out after 2 s" in (r.records[0].error or "")
    assert time.monotonic() - started < 4  # capped by [playbooks] max_step_seconds = 2


def test_if_and_parallel(cfg: Config) -> None:
    calls: list[str] = []
    r, _ = run(cfg, pb("""  - id: check
    type: if
    condition: {field: details.score, op: ">=", value: 5}
    then: both
    else: quiet
  - id: both
    type: parallel
    branches: [one, two]
    on_success: done
  - id: one
    action: collect_evidence
  - id: two
    action: report
  - id: quiet
    type: end
  - id: done
    type: end
"""), stand_ins(calls))
    assert sorted(calls) == ["collect_evidence", "report"] and r.ok()
    assert [x.step for x in r.records if x.type == "parallel"] == ["both"]


def test_approval_approved_rejected_and_expired(cfg: Config, tmp_path: Path) -> None:
    steps = """  - id: ask
    type: approval
    prompt: "Khôi phục?"
    ttl_minutes: {ttl}
    on_success: approved
    on_failure: refused
    on_expiry: late
  - id: approved
    action: restore
  - id: refused
    action: report
  - id: late
    action: notify
    with: {{to: x, subject: s, body: b}}
"""
    store = IncidentStore(tmp_path / "s.db", "tan-ky")
    for decision, expect in ((True, "restore"), (False, "report")):
        calls: list[str] = []
        p = pb(steps.format(ttl=10))
        event = {"kind": "k", "details": {}}
        inc, _ = store.open_or_join(f"p{decision}", event, "high")
        ctx = Context(cfg, p, event, incident=inc, store=store, approval_poll_s=0.05)
        t = threading.Thread(target=Runner(ctx, stand_ins(calls)).run)
        t.start()
        deadline = time.monotonic() + 5
        while store.approval(inc.id, "ask") != "waiting" and time.monotonic() < deadline:
            time.sleep(0.02)
        store.decide(inc.id, "ask", approve=decision, by="cli:chu-tich")
        t.join(5)
        assert calls == [expect]
        with pytest.raises(Exception, match="already"):
            store.decide(inc.id, "ask", approve=True, by="cli:x")
    calls = []
    p = pb(steps.format(ttl=0.001))  # 60 ms
    inc, _ = store.open_or_join("late", {"kind": "k", "details": {}}, "high")
    Runner(Context(cfg, p, {"kind": "k", "details": {}}, incident=inc, store=store,
                   approval_poll_s=0.02), stand_ins(calls)).run()
    assert calls == ["notify"] and store.approval(inc.id, "ask") == "expired"


def test_dry_run_walks_every_step_and_calls_nothing(cfg: Config) -> None:
    calls: list[str] = []
    p = load_text((REPO / "playbooks" / "ransomware-suspected.yaml").read_text(), "r.yaml")
    r, _ = run(cfg, p, stand_ins(calls), dry_run=True)
    assert calls == []
    assert {x.step for x in r.records} == {s.id for s in p.steps}
    assert all(x.would for x in r.records)


def test_incidents_join_thresholds_and_forward_only_states(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "s.db", "tan-ky")
    a, new = store.open_or_join("p", {"kind": "k"}, "high")
    b, again = store.open_or_join("p", {"kind": "k"}, "high")
    assert new and not again and a.id == b.id and a.id.startswith("INC-tan-ky-")
    assert store.advance(a.id, "contained", "x") and not store.advance(a.id, "open", "x")
    store.advance(a.id, "closed", "x")
    c, new = store.open_or_join("p", {"kind": "k"}, "high")
    assert new and c.id != a.id  # a closed incident is not joined
    assert [store.hit("q", 60) for _ in range(3)] == [1, 2, 3]
    store.reset_hits("q")
    assert store.hit("q", 60) == 1
