"""``secops demo`` end to end: the tour's attack is detected, contained and undone.

The real CLI on a copy of configs/demo.toml pointed into tmp_path (its off-site server on a
free port); and the demo attacker's licence check, with its negative twin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from integration.servers import free_port
from secops.demo.attack import MARKER
from secops.fim.contain import is_immutable

DEMO_CONFIG = Path(__file__).parents[2] / "configs" / "demo.toml"


def _env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}


def _attacker(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secops.demo.attack", str(folder), *args],
                          capture_output=True, text=True, env=_env(folder.parent), timeout=60,
                          check=False)


@pytest.mark.requires_restic
@pytest.mark.requires_rclone
@pytest.mark.requires_gpg
def test_demo_tour_contains_the_attack_and_restores_every_file(tmp_path: Path) -> None:
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    assert '"../.demo/' in text and "18731" in text and 'dir = "../playbooks"' in text, \
        "configs/demo.toml changed shape"
    config = tmp_path / "demo.toml"
    playbooks = DEMO_CONFIG.parents[1] / "playbooks"
    config.write_text(text.replace('"../.demo/', f'"{tmp_path}/')
                      .replace('dir = "../playbooks"', f'dir = "{playbooks}"')
                      .replace("18731", str(free_port())), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "secops", "--config", str(config), "demo"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=240,
                          check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "An attack, detected and contained" in out
    assert "ransomware.suspected" in out
    if os.geteuid() == 0:  # as in CI: fanotify stops the writer within a few files
        assert "detection: fanotify" in out, out
        assert "writer stopped (SIGSTOP)" in out, out
        damaged = re.search(r"damaged before containment: (\d+) of \d+ files", out)
        assert damaged is not None, out
        assert int(damaged.group(1)) <= 5, out
    else:
        assert "detection: inotify only" in out, out
    assert "read-only for everyone now, root included" in out
    assert re.search(r"\d+ files? restored, all verified", out), out
    # a decoy may be the attacker's first file: caught before any document was damaged,
    # and then there is nothing to restore from the snapshot (the decoy is put back)
    restored = "nothing to restore from the snapshot" not in out
    _the_report_matches_the_state(config, tmp_path, restored=restored)

    # nothing outlives the tour: no immutable path, no daemon, no attacker
    data = tmp_path / "bau-cu"
    assert (data / MARKER).is_file()
    frozen = [p for p in data.rglob("*") if is_immutable(str(p))]
    assert not frozen and not is_immutable(str(data)), frozen
    mine = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in argv or b"secops.demo.attack" in argv:
            mine.append(argv)
    assert not mine, mine


def _secops(config: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "secops", "--config", str(config), *args],
                          capture_output=True, text=True, env=_env(home), timeout=120,
                          check=False)


def _the_report_matches_the_state(config: Path, home: Path, *, restored: bool) -> None:
    """The tour's bundle, read as the police read it: every local snapshot id it names
    exists; the in-place restore is §8.1's; the excerpt holds the tour's own backups,
    drills and restore; the personal-data judgement is the same in English."""
    (bundle,) = (home / "state" / "reports").glob("INC-*.tar.gz")
    with tarfile.open(bundle) as tar:
        tar.extractall(home / "police", filter="data")
    top = next((home / "police").iterdir())
    doc = json.loads((top / "report.json").read_text(encoding="utf-8"))
    listed = _secops(config, home, "snapshots", "--target", "local", "--json")
    existing = {s["id"] for s in json.loads(listed.stdout)}
    named = [s["snapshot_id"] for s in doc["snapshots"] if s["target"] == "local"]
    named += [r[k] for r in doc["recovery"]["restores"] for k in ("snapshot", "safety_snapshot")
              if r["target"] == "local" and r[k]]
    named += [d["snapshot_id"] for d in doc["recovery"]["drills"] if d["target"] == "local"]
    assert named and all(any(e.startswith(n) for e in existing) for n in named), \
        (named, existing)
    restores = doc["recovery"]["restores"]
    if restored:
        assert [r["in_place"] for r in restores] == [True] and restores[0]["safety_snapshot"]
    else:
        assert restores == [], restores
    kinds = {json.loads(line)["kind"] for line in
             (top / "audit" / "audit-excerpt.jsonl").read_text(encoding="utf-8").splitlines()}
    assert {"backup.completed", "drill.completed", "incident.opened"} <= kinds, kinds
    assert ("restore.completed" in kinds) is restored, kinds
    english = _secops(config, home, "report", "incident", doc["incident"]["id"], "--lang", "en",
                      "--json")
    assert english.returncode == 0, english.stderr
    with tarfile.open(json.loads(english.stdout)["bundle"]) as tar:
        tar.extractall(home / "police-en", filter="data")
    en = json.loads(next((home / "police-en").iterdir()).joinpath("report.json").read_text(
        encoding="utf-8"))
    assert en["breach"]["personal_data"] == doc["breach"]["personal_data"]


def test_demo_attacker_refuses_a_folder_without_the_marker(tmp_path: Path) -> None:
    folder = tmp_path / "office"
    folder.mkdir()
    (folder / "danh-sach.csv").write_text("STT,Họ và tên\n1,Nguyễn Văn An\n", encoding="utf-8")
    before = (folder / "danh-sach.csv").read_bytes()
    done = _attacker(folder)
    assert done.returncode == 2
    assert MARKER in done.stderr
    assert (folder / "danh-sach.csv").read_bytes() == before


def test_demo_attacker_encrypts_a_marked_folder_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    (folder / "sub").mkdir(parents=True)
    files = {folder / "a.txt": b"a" * 5000, folder / "sub" / "b.csv": b"STT,Ten\n" * 300}
    for path, data in files.items():
        path.write_bytes(data)
    (folder / MARKER).write_text("demo\n", encoding="utf-8")

    assert _attacker(folder, "--limit", "1").stdout.strip() == \
        "demo attacker: 1 of 1 files encrypted"
    assert sum(p.read_bytes() != d for p, d in files.items()) == 1
    done = _attacker(folder)
    assert done.returncode == 0 and "2 of 2 files encrypted" in done.stdout
    for path, data in files.items():  # same name and size, other bytes
        assert path.is_file() and len(path.read_bytes()) == len(data)
        assert path.read_bytes()[:64] != data[:64]
    assert (folder / MARKER).read_text(encoding="utf-8") == "demo\n"
