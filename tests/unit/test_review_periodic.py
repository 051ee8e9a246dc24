"""The daemon's weekly risk review (issue 16): only a check that newly fails at high or
critical severity is an event, once; the review is kept for the next comparison and the
Monday report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.review import periodic
from secops.review.model import Result, Review, Text, spec
from secops.review.store import last_path


def result(cid: str, severity: str, status: str) -> Result:
    s = spec(cid, severity, ("t", "t"), ("vì", "why"), ("sửa", "fix"))  # type: ignore[arg-type]
    return Result(s, status, Text(f"thấy {cid}", f"found {cid}"))  # type: ignore[arg-type]


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    (tmp_path / "data").mkdir()
    return parse_config({"office": {"name": "X", "code": "x"},
                         "paths": {"state_dir": "state", "watch": ["data"]},
                         "backup": {"targets": [{"name": "local", "repository": "repo"}]}},
                        tmp_path / "c.toml")


def test_only_new_high_findings_are_told(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    weeks = iter([
        Review("2026-11-22T14:00:00Z", (result("ssh.root_login", "critical", "fail"),
                                        result("ssh.x11_forwarding", "low", "fail"),
                                        result("samba.smb1", "high", "pass"))),
        Review("2026-11-29T14:00:00Z", (result("ssh.root_login", "critical", "fail"),
                                        result("ssh.x11_forwarding", "low", "pass"),
                                        result("samba.smb1", "high", "fail"))),
    ])
    monkeypatch.setattr(periodic, "run_review", lambda *_a, **_k: next(weeks))
    first = periodic.run_periodic(cfg)
    assert [f["check"] for f in first["new_high"]] == ["ssh.root_login"]
    assert first["previous_score"] is None and last_path(Path(cfg.paths.state_dir)).exists()
    second = periodic.run_periodic(cfg)
    # root login still open: not told again; SMB1 newly on: told; X11 fixed
    assert [(f["check"], f["severity"]) for f in second["new_high"]] == [("samba.smb1",
                                                                          "high")]
    assert second["fixed"] == ["ssh.x11_forwarding"] and second["previous_score"] == \
        first["score"]
    assert second["new_high"][0]["found_vi"] == "thấy samba.smb1"


def test_the_daemon_raises_each_new_high_finding(tmp_path: Path) -> None:
    from secops.daemon.service import Service

    (tmp_path / "data").mkdir()
    conf = parse_config({"office": {"name": "X", "code": "x"},
                         "paths": {"state_dir": "state", "watch": ["data"]},
                         "backup": {"targets": [{"name": "local", "repository": "repo"}]}},
                        tmp_path / "c.toml")
    logged: list[tuple[str, str]] = []
    s = Service(lambda: conf, lambda level, msg: logged.append((level, msg)))
    try:
        doc: dict[str, Any] = {"score": 70, "previous_score": 80, "new": ["samba.smb1"],
                               "fixed": [], "new_high": [
                                   {"check": "samba.smb1", "severity": "high",
                                    "found": "server min protocol = NT1",
                                    "found_vi": "server min protocol = NT1"}]}
        s._report_scheduled("review", doc)
        events = s.db.recent_events()
        assert [(e["kind"], e["severity"], e["details"]["check"]) for e in events] == [
            ("review.finding", "high", "samba.smb1")]
        s._report_scheduled("review", {**doc, "new": [], "new_high": []})  # the twin
        assert len(s.db.recent_events()) == 1
        assert any("risk review: score 70" in m for _, m in logged)
    finally:
        s.worker.stop(timeout=5)
        s.db.close()
