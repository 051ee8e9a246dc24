"""Backups to a local repository and an append-only REST server (rclone), for real."""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from integration.office import Office, target_toml
from integration.servers import RestServer, free_port

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_rclone,
              pytest.mark.requires_gpg]

SNAPSHOT_KEYS = {"id", "short_id", "time", "target", "paths", "tags", "hostname"}
RESULT_KEYS = {"target", "ok", "snapshot_id", "files_new", "files_changed", "data_added",
               "duration_s", "error"}


@pytest.fixture
def office(tmp_path: Path, rest_server: RestServer) -> Office:
    name = tmp_path.name[-40:].replace("_", "-").lower()
    return Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", rest_server.url(name), append_only=True),
    ]).write()


def test_init_is_idempotent_and_creates_private_secrets(office: Office) -> None:
    first = office.run("init", "--json")
    assert first.code == 0, first.err
    assert first.json()["changed"] is True
    assert office.state.stat().st_mode & 0o777 == 0o700
    for t in ("local", "offsite"):
        pw = office.password_file(t)
        assert pw.stat().st_mode & 0o777 == 0o600
        assert len(pw.read_text().strip()) >= 40
    assert (office.state / "keys" / "office-ed25519.key").stat().st_mode & 0o777 == 0o600
    def keys() -> dict[Path, bytes]:
        # the audit log's MAC key moves on with every record, by design
        return {p: p.read_bytes() for p in (office.state / "keys").iterdir()
                if p.name != "audit-mac.state"}

    before = keys()
    second = office.run("init")
    assert second.code == 0, second.err
    assert "Nothing to do" in second.out
    assert keys() == before


def test_backup_now_reaches_every_target_with_tags(office: Office) -> None:
    assert office.run("init").code == 0
    done = office.run("backup", "now", "--json")
    assert done.code == 0, done.err
    results = done.json()["results"]
    assert [r["target"] for r in results] == ["local", "offsite"]
    for r in results:
        assert set(r) >= RESULT_KEYS
        assert r["ok"] is True and r["error"] is None
        assert re.fullmatch(r"[0-9a-f]{64}", r["snapshot_id"])
        data_files = sum(1 for p in office.data.rglob("*") if p.is_file())
        audit_files = sum(1 for p in (office.state / "audit").iterdir())
        # + the signed manifest and its signature, + the audit log and its checkpoints
        assert r["files_new"] == data_files + 2 + audit_files
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    sheet.write_text(sheet.read_text() + "Sửa đổi\n", encoding="utf-8")
    again = office.run("backup", "now", "--reason", "change", "--json")
    assert again.code == 0, again.err
    # the changed sheet, the new manifest and its signature, the audit log and checkpoints
    assert [r["files_changed"] for r in again.json()["results"]] == [5, 5]

    listed = office.run("snapshots", "--json")
    assert listed.code == 0, listed.err
    snaps = listed.json()
    assert len(snaps) == 4
    for s in snaps:
        assert set(s) == SNAPSHOT_KEYS
        assert s["time"].endswith("Z")
        assert "office:tan-ky" in s["tags"]
        assert s["paths"] == sorted([str(office.data), str(office.state / "audit"),
                                     str(office.manifest_dir(s["target"]))])
    reasons = sorted(t for s in snaps for t in s["tags"] if t.startswith("reason:"))
    assert reasons == ["reason:change"] * 2 + ["reason:manual"] * 2
    ids = {r["snapshot_id"] for r in results}
    assert ids <= {s["id"] for s in snaps}
    one = office.run("snapshots", "--target", "offsite", "--json").json()
    assert {s["target"] for s in one} == {"offsite"} and len(one) == 2


def test_unreachable_target_fails_alone(tmp_path: Path, rest_server: RestServer) -> None:
    dead = free_port()
    office = Office(tmp_path, [
        target_toml("local", str(tmp_path / "repo")),
        target_toml("offsite", f"rest:http://127.0.0.1:{dead}/x/", append_only=True),
    ]).write()
    init = office.run("init")
    assert init.code == 3
    assert "offsite" in init.err
    done = office.run("backup", "now", "--json")
    assert done.code == 3
    assert "offsite" in done.err
    by = {r["target"]: r for r in done.json()["results"]}
    assert by["local"]["ok"] is True
    assert by["offsite"]["ok"] is False and "unreachable" in by["offsite"]["error"]
    assert by["offsite"]["duration_s"] < 30  # fails fast, does not hang on restic's retries


def test_outage_then_catch_up(office: Office, rest_server: RestServer) -> None:
    assert office.run("init").code == 0
    with rest_server.outage():
        down = office.run("backup", "now", "--json")
    assert down.code == 3
    by = {r["target"]: r for r in down.json()["results"]}
    assert by["local"]["ok"] and not by["offsite"]["ok"]
    up = office.run("backup", "now", "--json")
    assert up.code == 0, up.err
    assert all(r["ok"] for r in up.json()["results"])


def test_wrong_password_is_named(office: Office) -> None:
    assert office.run("init").code == 0
    office.password_file("local").write_text("not-the-password\n")
    done = office.run("backup", "now", "--json")
    assert done.code == 3
    by = {r["target"]: r for r in done.json()["results"]}
    assert "wrong password" in by["local"]["error"]
    assert by["offsite"]["ok"] is True


def test_password_file_readable_by_others_is_refused(office: Office) -> None:
    assert office.run("init").code == 0
    pw = office.password_file("local")
    pw.chmod(0o644)
    done = office.run("backup", "now", "--target", "local")
    assert done.code == 3
    assert str(pw) in done.out + done.err and "chmod 600" in done.out + done.err
    pw.chmod(0o600)
    assert office.run("backup", "now", "--target", "local").code == 0  # the twin


def test_restic_missing_says_how_to_install(tmp_path: Path) -> None:
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    restic="/nonexistent/restic").write()
    done = office.run("init")
    assert done.code == 3
    assert "restic is not installed" in done.out and "apt-get install restic" in done.out


def test_append_only_server_refuses_deletion_and_secops_never_tries(
        office: Office, rest_server: RestServer, tmp_path: Path) -> None:
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    assert office.run("backup", "now").code == 0
    ret = office.run("backup", "retention", "--json")
    assert ret.code == 0, ret.err
    rows = {r["target"]: r for r in ret.json()["results"]}
    assert "append-only" in rows["offsite"]["skipped"]
    assert len(rows["local"]["removed"]) == 1  # keep_last = 1 applies to the local target
    offsite = [s for s in office.run("snapshots", "--json").json() if s["target"] == "offsite"]
    assert len(offsite) == 2
    # The server itself refuses a deletion, whoever asks (this is the REST protocol's
    # DELETE that `restic forget` sends; restic 0.14 retries a 403 for about 45 s).
    base = repo_http_url(office)
    assert http_status("DELETE", f"{base}snapshots/{offsite[0]['id']}") == 403
    # Lock files are the exception: the server lets restic remove its own locks.
    assert http_status("POST", f"{base}locks/{'0' * 64}", b"{}") == 200
    assert http_status("DELETE", f"{base}locks/{'0' * 64}") == 200
    after = [s for s in office.run("snapshots", "--json").json() if s["target"] == "offsite"]
    assert [s["id"] for s in after] == [s["id"] for s in offsite]
    # ... and secops is not left broken by whatever that refused deletion left behind.
    done = office.run("backup", "now", "--json")
    assert done.code == 0, done.err


def repo_http_url(office: Office) -> str:
    line = next(t for t in office.targets if "offsite" in t)
    return line.split('repository = "rest:')[1].split('"')[0]


def http_status(method: str, url: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback test server
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_retention_never_removes_pinned(tmp_path: Path) -> None:
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    first = office.run("snapshots", "--json").json()[0]["id"]
    env = {"RESTIC_PASSWORD_FILE": str(office.password_file("local")), "HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin", "RESTIC_CACHE_DIR": str(tmp_path / "c")}
    subprocess.run(["restic", "-r", str(tmp_path / "repo"), "tag", "--add", "pinned", first],
                   env=env, check=True, capture_output=True, timeout=60)
    pinned_id = [s["id"] for s in office.run("snapshots", "--json").json()
                 if "pinned" in s["tags"]]
    for _ in range(2):
        assert office.run("backup", "now").code == 0
    dry = office.run("backup", "retention", "--dry-run", "--json")
    assert dry.code == 0 and len(office.run("snapshots", "--json").json()) == 3  # no side effect
    assert office.run("backup", "retention").code == 0
    left = office.run("snapshots", "--json").json()
    assert len(left) == 2
    assert pinned_id[0] in {s["id"] for s in left}
