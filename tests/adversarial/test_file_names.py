"""File names that are not UTF-8 (red-team review): Linux names are bytes, and any local
process, unpacked archive or Samba client can make one. Such a name must not switch off the
backups, the daemon or containment.

Through the real CLI, real restic and the real daemon: ``backup now`` takes the file into
the snapshot and its signed manifest; ``restore --to`` and ``drill`` verify it byte for byte
and fail a tampered copy; the daemon backs up a change to it and survives a restart; a
freeze with such names in the tree is released completely by ``unfreeze --kill``; an audit
record naming it verifies and a tampered one does not. The twins: ordinary Vietnamese names
(NFC, with diacritics) are stored as plain text, not encoded. And a dead integrity monitor
is a critical alert that ``secops status`` shows, not a log line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integration.corpus import make_corpus
from integration.daemon import Daemon, wait_for
from integration.office import QUIET_SCHEDULE, Office, Result, target_toml
from secops import pathtext

GATESIM = Path(__file__).with_name("gatesim.py")
FAST = "debounce_seconds = 1\nmax_delay_seconds = 10"
WAIT_S = 90.0
BAD = b"bad\xff\xfe.docx"                  # a watched file whose name is not UTF-8
BAD_DIR = b"th\xc6\xb0 m\xe1\xbb\xa5c \xff"  # "thư mục " + a stray byte: a folder
EXCLUDED_BAD = b"~$x\xff.tmp"              # a name the excludes leave out (~$*, *.tmp)
VI_NAME = unicodedata.normalize("NFC", "Biên bản họp tổ bầu cử số 1.docx")


@dataclasses.dataclass
class NamesOffice(Office):
    """The real CLI; stdout of ``--json`` must be valid UTF-8, other output may carry the
    raw bytes of a name (as ``ls`` or ``find`` print it)."""

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> Result:
        base = {"PATH": os.environ["PATH"], "HOME": str(self.root), "LANG": "C.UTF-8"}
        base.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "secops", "--config", str(self.config), *args],
            capture_output=True, env=base, timeout=timeout, check=False)
        err = done.stderr.decode("utf-8", "surrogateescape")
        assert "Traceback" not in err, err
        out = done.stdout.decode("utf-8") if "--json" in args else \
            done.stdout.decode("utf-8", "surrogateescape")
        return Result(done.returncode, out, err)


def raw(office: Office, *names: bytes) -> bytes:
    """The byte path of ``names`` under the watched folder."""
    return b"/".join([os.fsencode(office.data), *names])


def put(path: bytes, content: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


def restic_env(office: Office) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(office.root),
            "RESTIC_PASSWORD_FILE": str(office.password_file("local")),
            "RESTIC_REPOSITORY": str(office.root / "repo"),
            "RESTIC_CACHE_DIR": str(office.root / "restic-cache")}


def restic(office: Office, *args: str) -> bytes:
    return subprocess.run(["restic", *args], env=restic_env(office), check=True,
                          capture_output=True, timeout=120).stdout


def forge(office: Office) -> None:
    """The bad file changed (same size) behind the signed manifest: a snapshot made with
    restic alone (the office's excludes), carrying the old signed manifest."""
    put(raw(office, BAD), b"bien ban \x00\x00" * 100)
    restic(office, "backup", "--tag", "secops", "--exclude", "~$*", "--exclude", "*.tmp",
           str(office.data), str(office.manifest_dir()))


def manifest_bytes(office: Office) -> bytes:
    return (office.manifest_dir() / "secops-manifest.json").read_bytes()


def snapshot_ids(office: Office) -> list[str]:
    snaps = office.run("snapshots", "--json").json()
    return [str(s["id"]) for s in sorted(snaps, key=lambda s: str(s["time"]))]


def audit_path(office: Office) -> Path:
    return office.state / "audit" / "audit.jsonl"


def status(office: Office) -> dict[str, Any]:
    done = office.run("status", "--json")
    assert done.code == 0, done.err
    doc: dict[str, Any] = done.json()
    return doc


def kinds(office: Office) -> list[str]:
    return [a["kind"] for a in status(office)["alerts"]]


def settled(office: Office) -> bool:
    doc = status(office)
    return doc["pending_changes"] == 0 and all(t["last_ok"] for t in doc["targets"].values())


def latest_content(office: Office, path: bytes, out: Path) -> bytes:
    done = office.run("restore", "latest", "--to", str(out), "--force")
    assert done.code == 0, done.err
    with open(os.fsencode(out) + path, "rb") as f:
        return f.read()


def immutable_paths(root: bytes) -> list[bytes]:
    from secops.fim.contain import is_immutable

    found = []
    for folder, _dirs, files in os.walk(root):
        for p in [folder, *(os.path.join(folder, f) for f in files)]:
            with contextlib.suppress(OSError):
                if is_immutable(os.fsdecode(p)):
                    found.append(p)
    return found


@pytest.fixture
def office(tmp_path: Path) -> NamesOffice:
    o = NamesOffice(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=FAST, tail=QUIET_SCHEDULE)
    o.write()
    put(raw(o, BAD), b"bien ban \xff\xfe" * 100)
    put(raw(o, BAD_DIR, BAD), b"trong thu muc")
    put(raw(o, EXCLUDED_BAD), b"lock")
    put(raw(o, VI_NAME.encode("utf-8")), "Biên bản họp".encode())
    assert o.run("init").code == 0
    return o


# -- the codec (pure) ------------------------------------------------------------------------

@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b))
def test_the_codec_gives_back_every_byte_name(name: bytes) -> None:
    path = os.fsdecode(b"/srv/bau-cu/" + name)
    stored = pathtext.encode(path)
    stored.encode("utf-8")  # any store takes it
    assert pathtext.decode(stored) == path
    assert os.fsencode(pathtext.decode(stored)) == b"/srv/bau-cu/" + name
    assert (stored == path) == pathtext.plain(path)  # plain text is stored as itself
    assert stored.startswith("/") or stored.startswith(pathtext.PREFIX)


@given(st.text(max_size=30))
def test_the_codec_is_reversible_for_any_text(text: str) -> None:
    assert pathtext.decode(pathtext.encode(text)) == text
    assert pathtext.loads(pathtext.dumps({text: [text]})) == {text: [text]}


def test_vietnamese_and_lookalikes_stay_plain_a_bad_name_is_encoded_and_shown() -> None:
    vi = "/srv/bau-cu/" + VI_NAME
    assert pathtext.encode(vi) == vi
    assert pathtext.encode("/srv/b64:x") == "/srv/b64:x"  # only a leading b64: is special
    assert pathtext.decode(pathtext.encode("b64:not a path")) == "b64:not a path"
    bad = os.fsdecode(b"/srv/bau-cu/" + BAD)
    assert pathtext.encode(bad).startswith("b64:")
    assert pathtext.display(bad) == "/srv/bau-cu/bad\\xff\\xfe.docx (not UTF-8)"
    assert pathtext.display(pathtext.decode(pathtext.encode(bad))) == pathtext.display(bad)
    assert pathtext.display(vi) == vi


# -- the stores (real SQLite) ------------------------------------------------------------

def test_every_path_table_keeps_a_bad_name_and_stores_vietnamese_as_text(tmp_path: Path
                                                                          ) -> None:
    """Before: UnicodeEncodeError (surrogates not allowed) from each store."""
    from secops.daemon.state import StateDB
    from secops.fim.baseline import Baseline, Record
    from secops.fim.state import FimState
    from secops.manifest.cache import HashCache
    from secops.playbooks.incidents import IncidentStore

    db_path = tmp_path / "state.db"
    bad = os.fsdecode(b"/srv/bau-cu/" + BAD)
    vi = "/srv/bau-cu/" + VI_NAME
    cache = HashCache(db_path)
    cache.store([(bad, (1, 2, 3, 4), "a" * 64), (vi, (1, 2, 3, 5), "b" * 64)])
    assert set(cache.load()) == {bad, vi}
    cache.forget([bad])
    assert set(cache.load()) == {vi}
    cache.close()
    state = StateDB(db_path)
    assert state.record_changes([bad, vi], 1.0) == 2
    state.add_event("2026-03-01T00:00:00Z", "integrity.unauthorized_change", "integrity",
                    "high", {"paths": [bad, vi], "changes": [{"path": bad}]})
    assert state.recent_events(1)[0]["details"]["paths"] == [bad, vi]
    state.close()
    base = Baseline(db_path)
    rec = Record(bad, 1, 2, 3, 4, 0o100644, 0, 0, "c" * 64, "docx", True, 1.0, b"")
    base.apply([rec, dataclasses.replace(rec, path=vi)], [])
    assert base.get(bad) == rec and set(base.load()) == {bad, vi}
    base.set_shadow(bad, b"old text")
    assert base.shadow(bad) == b"old text"
    base.close()
    fim = FimState(db_path)
    fid = fim.record_freeze("test", [{"pid": 5, "exe": bad, "stopped": True}])
    fim.add_frozen_paths(fid, [bad, vi])
    assert set(fim.frozen_paths(fid)) == {bad, vi}
    frozen = fim.active_freeze()
    assert frozen is not None and frozen.processes[0]["exe"] == bad
    fim.close()
    store = IncidentStore(db_path, "tan-ky")
    inc, _ = store.open_or_join("protected-file-changed", {
        "kind": "integrity.unauthorized_change", "details": {"paths": [bad]}}, "high")
    store.note(inc.id, "evidence.collected", {"paths": [bad]})
    assert store.get(inc.id).event["details"]["paths"] == [bad]
    assert store.timeline(inc.id)[-1]["paths"] == [bad]
    store.close()

    # the twin: what is UTF-8 is stored as the text itself, the bad name as b64:
    db = sqlite3.connect(db_path)
    both = {vi, pathtext.encode(bad)}
    for table, expected in (("file_hashes", {vi}), ("pending", both), ("fim_files", both),
                            ("frozen_paths", both), ("fim_shadow", {pathtext.encode(bad)})):
        stored = {r[0] for r in db.execute(f"SELECT path FROM {table}")}  # noqa: S608
        assert stored == expected, table
    details = db.execute("SELECT details FROM events").fetchone()[0]
    assert VI_NAME in details and pathtext.encode(bad) in details
    db.close()


# -- backup, restore, drill (real restic) ----------------------------------------------------

@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_backup_now_takes_the_name_into_the_snapshot_and_the_signed_manifest(
        office: NamesOffice, tmp_path: Path) -> None:
    """Before: exit 1 and a traceback, no snapshot (manifest/cache.py UnicodeEncodeError:
    surrogates not allowed)."""
    from secops.manifest.model import parse

    done = office.run("backup", "now")
    assert done.code == 0, done.err
    data = manifest_bytes(office)
    data.decode("utf-8")  # the signed manifest is UTF-8 JSON
    files = parse(data, "manifest").files
    bad = os.fsdecode(raw(office, BAD))
    assert files[bad].size == len(b"bien ban \xff\xfe" * 100)
    assert os.fsdecode(raw(office, BAD_DIR, BAD)) in files
    assert os.fsdecode(raw(office, EXCLUDED_BAD)) not in files  # excluded, as before
    # the twin: an ordinary Vietnamese name is the text itself in the manifest
    assert json.dumps(str(office.data / VI_NAME), ensure_ascii=False).encode() in data
    assert json.dumps(pathtext.encode(bad)).encode() in data
    listing = restic(office, "ls", "latest").splitlines()
    assert raw(office, BAD) in listing and raw(office, BAD_DIR, BAD) in listing


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_restore_and_drill_verify_it_byte_identical_and_a_tampered_copy_fails(
        office: NamesOffice, tmp_path: Path) -> None:
    """Before: ``backup now`` fails (above), so nothing can be restored."""
    assert office.run("backup", "now").code == 0
    out = tmp_path / "out"
    done = office.run("restore", "latest", "--to", str(out), "--json")
    assert done.code == 0, done.err
    assert done.json()["files_checked"] >= 3
    for name in ([BAD], [BAD_DIR, BAD]):
        with open(os.fsencode(out) + raw(office, *name), "rb") as f, \
                open(raw(office, *name), "rb") as g:
            assert f.read() == g.read()
    drill = office.run("drill", "--json")
    assert drill.code == 0, drill.err
    assert drill.json()["ok"] is True

    forge(office)  # the tampered copy
    forged = snapshot_ids(office)[-1]
    bad_restore = office.run("restore", forged, "--to", str(tmp_path / "out2"))
    assert bad_restore.code == 1, bad_restore.err
    assert "DIFFERS: " + str(office.data) + "/bad\\xff\\xfe.docx: " in bad_restore.err
    bad_drill = office.run("drill", "--snapshot", forged, "--json")
    assert bad_drill.code == 1, bad_drill.err
    report = bad_drill.json()
    assert report["ok"] is False
    [differs] = report["mismatched"]  # the JSON: exact (b64:...), readable through display
    assert pathtext.decode(differs).startswith(os.fsdecode(raw(office, BAD)) + ": SHA-256 ")
    html = sorted((office.state / "reports").glob("drill-*.html"))[-1].read_text("utf-8")
    assert "bad\\xff\\xfe.docx" in html  # readable, the stray bytes shown as \xff


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_an_audit_record_naming_it_verifies_and_a_tampered_one_fails(
        office: NamesOffice, tmp_path: Path) -> None:
    """Before: ``backup now`` fails; and a record with such a path cannot be written
    (audit/chain.py encode: UnicodeEncodeError)."""
    assert office.run("backup", "now").code == 0
    forge(office)
    assert office.run("restore", snapshot_ids(office)[-1], "--to", str(tmp_path / "o")
                      ).code == 1  # restore.mismatch names the file
    put(raw(office, BAD), b"ban moi")
    assert office.run("backup", "now").code == 0  # more records and a checkpoint after it
    lines = audit_path(office).read_bytes().splitlines()
    stored = pathtext.encode(os.fsdecode(raw(office, BAD)))
    [n] = [i for i, ln in enumerate(lines) if b'"kind":"restore.mismatch"' in ln]
    # the twin: every other record is ordinary text, written as it is
    assert [i for i, ln in enumerate(lines) if pathtext.PREFIX.encode() in ln] == [n]
    record = json.loads(lines[n])
    assert record["data"]["mismatched"][0].startswith(pathtext.PREFIX)
    assert pathtext.decode(record["data"]["mismatched"][0]).startswith(
        pathtext.decode(stored) + ": ")
    ok = office.run("audit", "verify", "--json")
    assert ok.code == 0, ok.out + ok.err
    assert ok.json()["ok"] is True

    # tampered: the record now names another file (its MAC and the chain no longer match)
    other = pathtext.encode(os.fsdecode(raw(office, b"other\xff.docx")) + ": x")
    lines[n] = lines[n].replace(record["data"]["mismatched"][0].encode(), other.encode())
    audit_path(office).write_bytes(b"\n".join(lines) + b"\n")
    bad = office.run("audit", "verify", "--json")
    assert bad.code == 1, bad.out
    assert bad.json()["first_bad_seq"] == record["seq"]


# -- the daemon (real) -----------------------------------------------------------------------

@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_the_daemon_backs_up_a_change_to_it_and_survives_a_restart(
        office: NamesOffice, tmp_path: Path) -> None:
    """Before: the daemon died in the start-up rescan (daemon/state.py record_changes:
    UnicodeEncodeError): under Restart=on-failure a crash loop, and the integrity monitor
    stopped on its baseline."""
    def monitor_running() -> bool:
        return bool(status(office)["integrity_monitor"]["status"] == "running")

    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(office) or d.proc is None or d.proc.poll() is not None,
                 WAIT_S, "the first backup")
        assert d.proc is not None and d.proc.poll() is None, d.log()[-3000:]
        wait_for(monitor_running, WAIT_S, "the integrity monitor")
        put(raw(office, BAD), b"sua lan 1")
        wait_for(lambda: latest_content(office, raw(office, BAD), tmp_path / "r1")
                 == b"sua lan 1", WAIT_S, "the backup of the change")
        assert d.stop() == 0
        put(raw(office, BAD), b"sua khi dung")  # while the daemon is down: the rescan's
        d = Daemon(office).start()
        wait_for(lambda: latest_content(office, raw(office, BAD), tmp_path / "r2")
                 == b"sua khi dung", WAIT_S, "the backup the start-up rescan found")
        wait_for(monitor_running, WAIT_S, "the integrity monitor after the restart")
        put(raw(office, BAD), b"sua lan 2")
        wait_for(lambda: latest_content(office, raw(office, BAD), tmp_path / "r3")
                 == b"sua lan 2", WAIT_S, "the backup of the change after the restart")
        assert d.proc is not None and d.proc.poll() is None, d.log()[-3000:]
        assert "integrity monitor stopped" not in d.log(), d.log()[-3000:]
        assert monitor_running()
        seen = kinds(office)
        assert "integrity.monitor_stopped" not in seen and "daemon.error" not in seen, seen
    finally:
        d.stop()


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
@pytest.mark.parametrize("names", [[EXCLUDED_BAD], [EXCLUDED_BAD, BAD, BAD_DIR + b"/" + BAD]],
                         ids=["excluded", "watched"])
def test_a_freeze_with_such_names_in_the_tree_is_released_completely(
        tmp_path: Path, names: list[bytes]) -> None:
    """Before, "excluded" (the daemon stays up): the freeze made the tree immutable, then
    died in fim/state.py add_frozen_paths: the monitor stopped, ``status`` still said
    running, and ``unfreeze --kill`` released 0 paths. "watched": the monitor died on its
    baseline already, so there was no gate and no freeze at all."""
    if os.geteuid() != 0:
        reason = "the freeze needs root (fanotify, SIGSTOP, chattr)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: missing prerequisites fail instead of skipping)")
        pytest.skip(reason)
    office = NamesOffice(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                         backup_extra=FAST, tail=QUIET_SCHEDULE)
    make_corpus(office.data, n=300, seed=7)
    office.write()
    for name in names:
        put(raw(office, name), b"bien ban")
    assert office.run("init").code == 0
    d = Daemon(office).start()
    attacker: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: "fanotify: writer pids and the open gate are on" in d.log(),
                 WAIT_S, "the integrity monitor with fanotify")
        wait_for(lambda: settled(office), WAIT_S, "the first backup")
        attacker = subprocess.Popen(
            [sys.executable, str(GATESIM), "encrypt", "--dir", str(office.data), "--out",
             str(tmp_path / "a.log"), "--only", ".csv", "--count", "20", "--seed", "3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        wait_for(lambda: "integrity.frozen" in kinds(office), WAIT_S, "the freeze")
        frozen = immutable_paths(os.fsencode(office.data))
        assert all(raw(office, name) in frozen for name in names)
        assert "integrity monitor stopped" not in d.log(), d.log()[-3000:]
        assert status(office)["integrity_monitor"]["status"] == "running"
        done = office.run("unfreeze", "--kill", "--json")
        assert done.code == 0, done.err
        assert done.json()["paths_released"] == len(frozen)
        assert immutable_paths(os.fsencode(office.data)) == []
        assert attacker.wait(10) == -signal.SIGKILL
    finally:
        if attacker is not None and attacker.poll() is None:
            attacker.kill()
        d.stop()
        if office.run("unfreeze", "--kill", "--json").code != 0 or \
                immutable_paths(os.fsencode(office.data)):
            subprocess.run(["chattr", "-R", "-i", str(office.data)], check=False,
                           capture_output=True)


# -- a dead integrity monitor is an alert ------------------------------------------------

def test_a_dead_integrity_monitor_is_a_critical_alert_shown_by_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: only a log line ("integrity monitor stopped: ...") and a ``daemon.error``;
    ``status`` said nothing about the monitor. The failure is injected (a bug the real
    program does not have on demand); the twin: a monitor that runs is "running", and one
    stopped with the daemon raises no alert."""
    from secops import childjob
    from secops.cli.context import AppContext
    from secops.cli.daemon_cmd import status_doc
    from secops.clock import iso_utc
    from secops.config.loader import load_config
    from secops.daemon.state import StateDB
    from secops.fim import monitor

    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    tail=QUIET_SCHEDULE + "\n[integrity]\nfanotify = false\n").write()
    cfg = load_config(office.config)
    app = AppContext(str(office.config))
    beat = StateDB(office.state / "state.db")  # this process plays the running daemon
    beat.heartbeat(iso_utc(datetime.now(UTC)), "running")
    beat.close()
    m = monitor.Monitor(cfg, lambda level, message: None)
    m.start()
    assert m.ready.wait(60)
    wait_for(lambda: status_doc(app)["integrity_monitor"]["status"] == "running", 10,
             "the monitor running")
    m.stop()
    doc = status_doc(app)
    assert doc["integrity_monitor"]["status"] == "stopped"
    assert doc["integrity_monitor"]["error"] is None
    assert "integrity.monitor_stopped" not in [a["kind"] for a in doc["alerts"]]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the scan")

    monkeypatch.setattr(childjob, "run", broken)  # the scan, in its child process
    m = monitor.Monitor(cfg, lambda level, message: None)
    m.start()
    assert m.ready.wait(60)
    wait_for(lambda: status_doc(app)["integrity_monitor"]["status"] == "stopped", 10,
             "the monitor's death recorded")
    doc = status_doc(app)
    alert = doc["alerts"][0]
    assert alert["kind"] == "integrity.monitor_stopped"
    assert "a bug in the scan" in alert["details"]["error"]
    assert "a bug in the scan" in doc["integrity_monitor"]["error"]
    db = sqlite3.connect(office.state / "state.db")
    try:
        assert db.execute("SELECT severity FROM events WHERE kind = ?",
                          ("integrity.monitor_stopped",)).fetchone()[0] == "critical"
    finally:
        db.close()
    m.stop()
