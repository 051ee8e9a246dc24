"""The daemon's handling of finished scheduled jobs: failures become alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from secops.config.loader import parse_config
from secops.daemon.jobs import Done, Job
from secops.daemon.service import Service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "data").mkdir()
    raw = {"office": {"name": "X", "code": "x"},
           "paths": {"state_dir": "state", "watch": ["data"]},
           "backup": {"targets": [{"name": "local", "repository": "repo"}]}}
    cfg = parse_config(raw, tmp_path / "c.toml")
    logged: list[tuple[str, str]] = []
    s = Service(lambda: cfg, lambda level, msg: logged.append((level, msg)))
    yield s
    s.worker.stop(timeout=5)
    s.db.close()


def kinds(service: Service) -> list[str]:
    return [e["kind"] for e in service.db.recent_events()]


def test_failed_scheduled_check_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("check", lambda: None),
                         result={"local": "target 'local': check failed: pack damaged"}))
    assert kinds(service) == ["backup.check_failed"]
    assert service.db.recent_events()[0]["details"]["targets"]["local"].endswith("damaged")


def test_failed_drill_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("drill", lambda: None), result={"local": "FAILED"}))
    assert kinds(service) == ["drill.failed"]


def test_successful_scheduled_jobs_raise_nothing(service: Service) -> None:
    service._handle(Done(Job("check", lambda: None), result={"local": "ok"}))
    service._handle(Done(Job("drill", lambda: None), result={"local": "ok"}))
    service._handle(Done(Job("retention", lambda: None),
                         result=[{"target": "local", "ok": True, "error": None}]))
    assert kinds(service) == []


def test_failed_retention_raises_an_alert(service: Service) -> None:
    service._handle(Done(Job("retention", lambda: None),
                         result=[{"target": "local", "ok": False, "error": "locked"}]))
    assert kinds(service) == ["backup.retention_failed"]
