"""The engine with a fake restic runner (our own interface) and a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from secops import process
from secops.backup.engine import Engine, repo_for
from secops.backup.restic import Restic, _BackupOutput
from secops.config.loader import parse_config
from secops.errors import BackupError, OperationalError, Stalled
from secops.keys.store import ensure_ed25519

LOCKED = ("unable to create lock in backend: repository is already locked by PID 4242 on "
          "srv by root (UID 0, GID 0)\nlock was created at 2026-11-28 10:00:00 (1m ago)\n"
          "storage ID 3fa3b1c2\nthe `unlock` command can be used to remove stale locks\n")
SUMMARY = {"message_type": "summary", "files_new": 3, "files_changed": 1,
           "files_unmodified": 5, "data_added": 1234, "total_files_processed": 9,
           "total_bytes_processed": 99, "snapshot_id": "abcd1234"}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime(2026, 11, 28, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class FakeRestic:
    """Scripted answers by restic sub-command, recording every argv."""

    def __init__(self, script: dict[str, list[tuple[int, str, str]]]) -> None:
        self.script = script
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, env: dict[str, str], timeout: float,
                 on_line: Callable[[str], None] | None = None, **_: Any) -> process.Completed:
        assert "RESTIC_PASSWORD_FILE" in env and "RESTIC_REPOSITORY" in env
        assert not any("password" in a.lower() for a in argv)
        self.calls.append(tuple(argv))
        sub = next(a for a in argv[1:] if not a.startswith("-") and "=" not in a)
        code, out, err = self.script[sub].pop(0) if len(self.script[sub]) > 1 else \
            self.script[sub][0]
        if on_line is not None:
            for line in out.splitlines(keepends=True):
                on_line(line)
            out = ""
        return process.Completed(tuple(argv), code, out, err, 0.01)


@pytest.fixture
def cfg(tmp_path: Path) -> Any:
    keys = tmp_path / "state" / "keys"
    keys.mkdir(parents=True)
    for t in ("a", "b"):
        (keys / f"restic-{t}.password").write_text("pw\n")
        (keys / f"restic-{t}.password").chmod(0o600)
    ensure_ed25519(keys / "office-ed25519.key", keys / "office-ed25519.pub")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "danh-sach.csv").write_text("STT,Họ và tên\n1,Lê Văn An\n")
    (tmp_path / "repo-a" / "snapshots").mkdir(parents=True)
    (tmp_path / "repo-a" / "snapshots" / ("abcd1234" + "e" * 56)).write_text("")
    raw = {"office": {"name": "X", "code": "x"},
           "paths": {"state_dir": "state", "watch": ["data"]},
           "backup": {"lock_wait_seconds": 10, "targets": [
               {"name": "a", "repository": "repo-a"},
               {"name": "b", "repository": "repo-b"}]}}
    return parse_config(raw, tmp_path / "c.toml")


def engine(cfg: Any, fake: FakeRestic, clock: FakeClock) -> Engine:
    return Engine(cfg, Restic("restic", 60, runner=fake), clock)


def test_locked_repository_is_retried_with_backoff_then_succeeds(cfg: Any) -> None:
    summary = json.dumps(SUMMARY) + "\n"
    fake = FakeRestic({"backup": [(1, "", LOCKED), (1, "", LOCKED), (0, summary, "")],
                       "unlock": [(0, "", "")]})
    clock = FakeClock()
    [result] = engine(cfg, fake, clock).backup("a")
    assert result.ok, result.error
    assert result.snapshot_id == "abcd1234" + "e" * 56  # full id found for restic 0.14
    assert (result.files_new, result.files_changed, result.data_added) == (3, 1, 1234)
    assert clock.sleeps == [1.0, 2.0]
    unlocks = [c for c in fake.calls if "unlock" in c]
    assert len(unlocks) == 2 and all("--remove-all" not in c for c in unlocks)


def test_lock_never_released_gives_up_after_the_budget(cfg: Any) -> None:
    fake = FakeRestic({"backup": [(1, "", LOCKED)], "unlock": [(1, "", "refused")]})
    clock = FakeClock()
    [result] = engine(cfg, fake, clock).backup("a")
    assert not result.ok and result.error is not None
    assert "locked" in result.error and "attempts" in result.error
    assert sum(clock.sleeps) == pytest.approx(10.0)


def test_one_failing_target_does_not_stop_the_other(cfg: Any) -> None:
    summary = json.dumps(SUMMARY) + "\n"
    fake = FakeRestic({"backup": [(1, "", "Fatal: wrong password or no key found\n"),
                                  (0, summary, "")],
                       "snapshots": [(0, json.dumps([{
                           "id": "abcd1234" + "f" * 56, "short_id": "abcd1234",
                           "time": "2026-11-28T10:00:00.123456789+07:00", "paths": ["/d"],
                           "hostname": "h", "tags": ["secops"]}]), "")]})
    results = engine(cfg, fake, FakeClock()).backup()
    assert [r.ok for r in results] == [False, True]
    assert results[0].error and "wrong password" in results[0].error
    assert results[1].snapshot_id == "abcd1234" + "f" * 56  # resolved via snapshots


def test_backup_warnings_on_exit_3_are_kept(cfg: Any) -> None:
    lines = json.dumps({"message_type": "error", "error": {"message": "permission denied"},
                        "during": "archival", "item": "/d/x.csv"}) + "\n" + \
        json.dumps(SUMMARY) + "\n"
    fake = FakeRestic({"backup": [(3, lines, "")]})
    [result] = engine(cfg, fake, FakeClock()).backup("a")
    assert result.ok
    assert result.warnings == ["/d/x.csv: permission denied"]


def test_tags_and_excludes_reach_restic(cfg: Any) -> None:
    fake = FakeRestic({"backup": [(0, json.dumps(SUMMARY) + "\n", "")]})
    engine(cfg, fake, FakeClock()).backup("a", reason="incident")
    argv = fake.calls[0]
    assert "secops,office:x,reason:incident" in argv
    manifest_dir = str(Path(cfg.paths.state_dir) / "snapshot-manifest" / "a")
    assert argv[-3:] == ("--", cfg.paths.watch[0], manifest_dir)


def test_file_changed_during_backup_is_backed_up_again(cfg: Any) -> None:
    """The manifest must describe the snapshot: a change under a running backup re-runs it."""
    sheet = Path(cfg.paths.watch[0]) / "danh-sach.csv"
    summary = json.dumps(SUMMARY) + "\n"
    fake = FakeRestic({"backup": [(0, summary, ""), (0, summary, "")]})
    calls = {"n": 0}
    original = fake.__call__

    def editing(argv: Sequence[str], **kw: Any) -> process.Completed:
        calls["n"] += 1
        if calls["n"] == 1:  # someone saves the file while restic runs
            sheet.write_text("STT,Họ và tên\n1,Lê Văn An\n2,Trần Thị Bình\n")
        return original(argv, **kw)

    eng = Engine(cfg, Restic("restic", 60, runner=editing), FakeClock())
    [result] = eng.backup("a")
    assert result.ok
    assert len([c for c in fake.calls if "backup" in c]) == 2
    assert any("changed during the backup" in w for w in result.warnings)
    manifest = Path(cfg.paths.state_dir) / "snapshot-manifest" / "a" / \
        "secops-manifest.json"
    doc = json.loads(manifest.read_text())
    assert doc["files"][str(sheet)][0] == sheet.stat().st_size  # describes the new content


def test_stable_files_are_backed_up_once(cfg: Any) -> None:
    fake = FakeRestic({"backup": [(0, json.dumps(SUMMARY) + "\n", "")]})
    [result] = engine(cfg, fake, FakeClock()).backup("a")
    assert result.ok and result.warnings == []
    assert len(fake.calls) == 1


def test_a_stalled_backup_names_its_target_and_says_it_stalled(cfg: Any) -> None:
    def hung(argv: Sequence[str], **kw: Any) -> process.Completed:
        if "backup" in argv:
            assert kw["stall_timeout"] == cfg.backup.stall_seconds
            assert kw["env"]["RESTIC_PROGRESS_FPS"] == "2"
            raise Stalled("restic made no progress for 300 s and was stopped (after 301 s)")
        raise OperationalError("restic did not finish within 60 s and was stopped")

    eng = Engine(cfg, Restic("restic", 60, runner=hung), FakeClock())
    [result] = eng.backup("a")
    assert not result.ok and result.stalled
    assert result.error is not None and result.error.startswith("target 'a': backup: restic "
                                                                "made no progress for 300 s")
    with pytest.raises(BackupError, match="target 'a': snapshots: restic did not finish"):
        eng.restic.snapshots(repo_for(cfg, cfg.target("a")))


def test_restic_status_lines_count_as_progress_only_when_they_move() -> None:
    out = _BackupOutput(None)
    status = {"message_type": "status", "percent_done": 0.5, "total_files": 3,
              "files_done": 1, "bytes_done": 10, "total_bytes": 20}
    assert out.feed(json.dumps(status) + "\n")
    assert not out.feed(json.dumps({**status, "seconds_elapsed": 9}) + "\n")  # on a timer
    assert out.feed(json.dumps({**status, "bytes_done": 11}) + "\n")
    assert out.feed(json.dumps({"message_type": "summary", "snapshot_id": "ab"}) + "\n")
