"""``restic tag`` rewrites a snapshot under a new id: every id secops handed out (a pin, a
drill, an incident) still resolves to a snapshot that exists, through ``lineage.current``."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.office import Office, target_toml
from secops.backup import lineage
from secops.backup.engine import Engine
from secops.backup.restic import Repo
from secops.config.loader import load_config

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def backed_up(tmp_path: Path) -> tuple[Office, Engine, Repo]:
    """An office after ``init`` and one backup to a local target; its engine and repo."""
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    cfg = load_config(office.config)
    engine = Engine.from_config(cfg)
    return office, engine, engine.open(cfg.backup.targets[0])


def test_a_retagged_snapshot_is_found_under_its_new_id(tmp_path: Path) -> None:
    office, engine, repo = backed_up(tmp_path)
    first = engine.restic.snapshots(repo)[-1]
    db = office.state / "state.db"
    assert lineage.current(db, "local", first.id) == first.id  # the untouched twin
    pinned = engine.retag(repo, first, add=("pinned", "freeze-1"))
    unpinned = engine.retag(repo, pinned, remove=("pinned",))
    ids = {s.id for s in engine.restic.snapshots(repo)}
    assert first.id not in ids and pinned.id not in ids  # restic really rewrote it, twice
    assert unpinned.id in ids and unpinned.tree == first.tree
    for handed_out in (first.id, first.short_id, pinned.id):
        assert lineage.current(db, "local", handed_out) == unpinned.id
    # the CLI takes an id secops handed out before the rewrites, as it was handed out
    restored = office.run("restore", first.short_id, "--to", str(tmp_path / "back"))
    assert restored.code == 0, restored.out + restored.err


def test_two_pins_of_one_snapshot_at_once_both_hold(tmp_path: Path) -> None:
    """The monitor's freeze pin and a playbook's pin race on the same snapshot: the second
    used to tag an id the first had just rewritten (restic 0.14: exit 0, "no snapshots were
    modified") and its tag was silently lost."""
    import threading

    office, engine, repo = backed_up(tmp_path)
    snap = engine.restic.snapshots(repo)[-1]
    errors: list[BaseException] = []

    def pin(label: str) -> None:
        try:
            Engine.from_config(engine.cfg).retag(repo, snap, add=("pinned", label))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=pin, args=(f"freeze-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    now = [s for s in engine.restic.snapshots(repo) if s.tree == snap.tree]
    assert len(now) == 1 and {"pinned", "freeze-1", "freeze-2"} <= set(now[0].tags)
    assert lineage.current(office.state / "state.db", "local", snap.id) == now[0].id


def test_a_tagging_killed_before_its_record_still_resolves(tmp_path: Path) -> None:
    """The demo stopped the daemon while a playbook pinned: restic had rewritten the
    snapshot, the listing after it was interrupted, no new id was recorded, and the id the
    freeze had handed out named nothing ("no snapshot ..." on restore). The intent recorded
    before restic ran lets the next listing, tagging or restore finish the record."""
    office, engine, repo = backed_up(tmp_path)
    first = engine.restic.snapshots(repo)[-1]
    db = office.state / "state.db"
    lineage.intend(db, first)  # what retag does first; then the process is killed ...
    engine.restic.tag(repo, first.id, add=("pinned",))  # ... after restic ran
    assert first.id not in {s.id for s in engine.restic.snapshots(repo)}
    assert lineage.current(db, "local", first.id) == first.id and lineage.unsettled(db, "local")
    restored = office.run("restore", first.short_id, "--to", str(tmp_path / "back"))
    assert restored.code == 0, restored.out + restored.err
    [now] = engine.restic.snapshots(repo)
    assert lineage.current(db, "local", first.id) == now.id and "pinned" in now.tags
    assert not lineage.unsettled(db, "local")
    # the twin: an intent whose tagging never ran settles to the id itself, no rewrite
    lineage.intend(db, now)
    listed, failures = engine.snapshots("local")
    assert not failures and [s.id for s in listed] == [now.id]
    assert not lineage.unsettled(db, "local") and lineage.current(db, "local", now.id) == now.id


def test_a_restore_that_meets_a_pin_of_its_snapshot_waits_and_follows_the_new_id(
        tmp_path: Path) -> None:
    """Under load a playbook's pin (restic tag: an exclusive lock, then a new id) ran while
    an in-place restore of the same snapshot started: "restore failed (locked)", exit 3. The
    lock conflict is injected at that moment (restic cannot be made to meet it on demand);
    the pin itself and both restores are real."""
    from secops.errors import RepositoryLocked
    from secops.layout import StateDir
    from secops.restore import restore as restore_module

    office, engine, repo = backed_up(tmp_path)
    snap = engine.restic.snapshots(repo)[-1]
    real = engine.restic.restore
    asked: list[str] = []

    def restore(r: object, snapshot_id: str, *args: object, **kwargs: object) -> list[str]:
        asked.append(snapshot_id)
        if len(asked) == 1:  # the pin holds the lock, and rewrites the snapshot
            engine.retag(repo, snap, add=("pinned",))
            raise RepositoryLocked("repository is already locked exclusively", target="local")
        return real(r, snapshot_id, *args, **kwargs)  # type: ignore[arg-type]

    engine.restic.restore = restore  # type: ignore[method-assign,assignment]
    out = tmp_path / "out"
    out.mkdir()
    warnings = restore_module._restore(engine, repo, snap, out, (), state=StateDir(office.state))
    [now] = engine.restic.snapshots(repo)
    assert asked == [snap.id, now.id] and now.id != snap.id and "pinned" in now.tags
    assert not warnings and any(out.rglob("*")), "nothing was restored"


def _lock_waiters(lock_file: Path) -> int:
    """Processes blocked on an flock of ``lock_file`` (``/proc/locks``: ``N: -> FLOCK``)."""
    ino = lock_file.stat().st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and line.split()[-3].endswith(f":{ino}"))


def test_a_restore_started_while_a_pin_is_recording_follows_the_new_id(tmp_path: Path) -> None:
    """CI: the demo's restore resolved the pinned id while the playbook's pin was in
    restic tag; by the listing the snapshot had its new id, not yet recorded ("no snapshot
    'eb9f…' on target 'local'"). Here the pin holds its lock with restic's rewrite done and
    the record still to write until the restore is seen waiting (or has ended): the restore
    waits for the record and restores the new id."""
    import threading
    import time

    from secops.files import exclusive

    office, engine, repo = backed_up(tmp_path)
    first = engine.restic.snapshots(repo)[-1]
    db = office.state / "state.db"
    lock = office.state / "tag.lock"
    tagged, restored = threading.Event(), threading.Event()
    seen: list[int] = []

    def pin() -> None:
        with exclusive(lock):
            lineage.intend(db, first)
            engine.restic.tag(repo, first.id, add=("pinned",))
            tagged.set()
            deadline = time.monotonic() + 600
            while not restored.is_set() and time.monotonic() < deadline:
                if _lock_waiters(lock):
                    seen.append(1)
                    break
                time.sleep(0.05)
            after = lineage.successor(first, engine.restic.snapshots(repo))
            assert after is not None
            lineage.record(db, "local", first.id, after.id)

    thread = threading.Thread(target=pin)
    thread.start()
    try:
        assert tagged.wait(300)
        assert first.id not in {s.id for s in engine.restic.snapshots(repo)}
        done = office.run("restore", first.id, "--to", str(tmp_path / "back"), timeout=900)
    finally:
        restored.set()
        thread.join(600)
    assert done.code == 0, done.out + done.err
    assert seen, "the restore did not wait for the pin's record"
    assert any((tmp_path / "back").rglob("*"))
