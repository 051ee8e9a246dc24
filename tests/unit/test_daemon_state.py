"""The daemon's state database and the watcher's event filter."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path

from secops.backup.models import TargetResult
from secops.daemon.state import StateDB, record_results
from secops.watch.observer import Change, _Handler


def test_pending_changes_clear_only_when_every_target_has_them(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.ensure_targets(["local", "offsite"])
    db.record_changes(["/d/a.csv", "/d/b.csv"], when=100.0)
    assert db.pending_count() == 2 and db.last_change() == 100.0
    failed = record_results(db, [TargetResult("local", ok=True, snapshot_id="x"),
                                 TargetResult("offsite", ok=False, error="down")],
                            started=150.0, now=160.0, now_iso="t", retry_max=900)
    assert failed == ["offsite"]
    assert db.pending_count() == 2  # offsite does not have them yet
    off = db.target("offsite")
    assert off.failing_since == 160.0 and off.next_retry == 160.0 + 15.0 and off.attempts == 1
    record_results(db, [TargetResult("offsite", ok=True, snapshot_id="y")],
                   started=170.0, now=175.0, now_iso="t", retry_max=900)
    assert db.pending_count() == 0
    assert db.target("offsite").failing_since is None


def test_retry_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.ensure_targets(["offsite"])
    delays = []
    for i in range(8):
        record_results(db, [TargetResult("offsite", ok=False, error="down")], started=0,
                       now=float(i), now_iso="t", retry_max=100, retry_min=10)
        st = db.target("offsite")
        assert st.next_retry is not None
        delays.append(st.next_retry - i)
    assert delays[:4] == [10, 20, 40, 80] and max(delays) == 100


def test_state_survives_reopening(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.ensure_targets(["local"])
    db.record_changes(["/d/a.csv"], when=5.0)
    db.close()
    again = StateDB(tmp_path / "state.db")
    assert again.pending_count() == 1 and again.last_change() == 5.0


@dataclass
class Ev:
    event_type: str
    src_path: str
    is_directory: bool = False
    dest_path: str = ""


def test_handler_enqueues_only_what_matters() -> None:
    out: queue.SimpleQueue[Change] = queue.SimpleQueue()
    h = _Handler(out, ["*.tmp", "~$*", ".~lock.*#"])
    h.dispatch(Ev("modified", "/d/a.csv"))
    h.dispatch(Ev("modified", "/d/~$a.xlsx"))
    h.dispatch(Ev("created", "/d/x.tmp"))
    h.dispatch(Ev("modified", "/d/sub", is_directory=True))
    h.dispatch(Ev("opened", "/d/a.csv"))
    h.dispatch(Ev("moved", "/d/b.tmp", dest_path="/d/b.csv"))
    h.dispatch(Ev("moved", "/d/c.csv", dest_path="/d/d.csv"))
    h.dispatch(Ev("created", "/d/new", is_directory=True))
    got = []
    while not out.empty():
        got.append(out.get())
    # a save through an excluded temp file is half a move: only its destination counts
    assert got == [Change("/d/a.csv", "modified"), Change("", "moved", "/d/b.csv"),
                   Change("/d/c.csv", "moved", "/d/d.csv"), Change("/d/new", "dir_created")]
