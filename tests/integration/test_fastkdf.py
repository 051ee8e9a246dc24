"""The tests' restic (``fastkdf.py``) makes repositories that real restic opens, checks and
backs up into, under the cheap key derivation, each with its own id; a wrong password still
fails; a repository that exists already is refused by the real init."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.requires_restic]


def restic(*args: str, password: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.parent),
           "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password)}
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_repository_made_by_the_tests_restic_is_restic_s_own(tmp_path: Path) -> None:
    assert Path(shutil.which("restic") or "").parent.name.startswith("secops-fastkdf-")
    repo, password, wrong = tmp_path / "repo", tmp_path / "pw", tmp_path / "wrong"
    password.write_text("mat-khau-dung\n")
    wrong.write_text("mat-khau-sai\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("danh sách cử tri\n")
    assert restic("init", password=password, repo=repo).returncode == 0
    [key] = list((repo / "keys").iterdir())
    doc = json.loads(key.read_text())
    assert (doc["N"], doc["r"], doc["p"]) == (1024, 8, 1)
    assert restic("backup", str(tmp_path / "data"), password=password, repo=repo
                  ).returncode == 0
    assert restic("check", "--read-data", password=password, repo=repo).returncode == 0
    assert restic("snapshots", password=wrong, repo=repo).returncode != 0
    assert restic("key", "list", password=password, repo=repo).returncode == 0
    other = tmp_path / "other"
    assert restic("init", password=password, repo=other).returncode == 0
    ids = {json.loads(restic("cat", "config", password=password, repo=r).stdout)["id"]
           for r in (repo, other)}
    assert len(ids) == 2
    again = restic("init", password=password, repo=repo)
    assert again.returncode != 0 and "already" in again.stderr, again.stderr
