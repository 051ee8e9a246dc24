"""``secops review`` through the real command on this machine, for a small office: the exit
code, the JSON shape, the difference a second run reports after one weakness is fixed, and
bad input."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from integration.office import Office, Result, target_toml

pytestmark = pytest.mark.requires_restic
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Office:
    root = tmp_path_factory.mktemp("review-office")
    o = Office(root, [target_toml("local", str(root / "repo"))]).write()
    done = o.run("init")
    assert done.code == 0, done.err
    return o


def voter_list(office: Office) -> Path:
    return next(p for p in sorted(office.data.rglob("*.csv")) if p.is_file())


def checks(run: Result) -> dict[str, dict[str, object]]:
    return {str(c["id"]): c for c in run.json()["checks"]}


def test_review_reports_a_fixed_weakness_the_second_time(office: Office) -> None:
    weak = voter_list(office)
    weak.chmod(0o666)   # the voter list anyone on the server may rewrite
    first = office.run("review", "--json", "--lang", "en")
    doc = first.json()
    assert set(doc) >= {"time", "score", "previous_score", "checks", "new", "fixed"}
    assert ISO_Z.match(doc["time"]) and doc["previous_score"] is None
    assert len(doc["checks"]) >= 40 and isinstance(doc["score"], int)
    for c in doc["checks"]:
        assert set(c) >= {"id", "severity", "status", "found", "why", "fix"}
        assert c["status"] in ("pass", "fail", "unknown", "not_applicable")
    by_id = checks(first)
    assert by_id["files.world_writable"]["status"] == "fail"
    assert str(weak) in str(by_id["files.world_writable"]["found"])
    # K_0 stays on the server until `secops keys escrow`
    assert by_id["secops.k0_gone"]["status"] == "fail"
    assert "files.world_writable" in doc["new"]
    high = [c for c in doc["checks"] if c["status"] == "fail"
            and c["severity"] in ("high", "critical")]
    assert first.code == (1 if high else 0)

    kept = office.state / "review" / "last.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700

    weak.chmod(0o640)
    second = office.run("review", "--json")
    again = second.json()
    assert "files.world_writable" in again["fixed"]
    assert "files.world_writable" not in again["new"]
    assert again["previous_score"] == doc["score"]
    assert checks(second)["files.world_writable"]["status"] == "pass"
    # the office speaks Vietnamese: the texts of --json too, unless --lang says otherwise
    assert "máy chủ" in str(checks(second)["secops.k0_gone"]["why"])


def test_human_output_is_vietnamese_by_default(office: Office) -> None:
    run = office.run("review")
    assert run.code in (0, 1), run.err
    assert "Điểm " in run.out
    assert "So với lần trước" in run.out or "lần rà soát đầu tiên" in run.out
    assert "Mức độ" in run.out or "không đạt" in run.out


def test_bad_lang_exit_2_one_line(office: Office) -> None:
    run = office.run("review", "--lang", "xx")
    assert run.code == 2
    assert run.out == ""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and "--lang" in lines[0] and "vi or en" in lines[0]
