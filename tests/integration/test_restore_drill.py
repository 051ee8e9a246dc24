"""Restore and drill from local, append-only REST and sftp targets; every tamper case with
its untouched twin."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from integration.office import Office, target_toml, tree
from integration.servers import RestServer, SshServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

DRILL_KEYS = {"ok", "snapshot_id", "target", "files_checked", "bytes", "mismatched", "missing",
              "rto_s", "report"}


def restic_env(office: Office, target: str = "local") -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(office.root),
            "RESTIC_PASSWORD_FILE": str(office.password_file(target)),
            "RESTIC_REPOSITORY": str(office.root / "repo"),
            "RESTIC_CACHE_DIR": str(office.root / "attacker-cache")}


def forge_snapshot(office: Office) -> None:
    """An attacker with the restic password writes a snapshot of their own."""
    manifest_dir = office.manifest_dir()
    subprocess.run(["restic", "backup", "--tag", "secops", str(office.data), str(manifest_dir)],
                   env=restic_env(office), check=True, capture_output=True, timeout=120)


@pytest.fixture
def office(tmp_path: Path) -> Office:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    return o


@pytest.mark.parametrize("kind", ["local", "rest", "sftp"])
def test_restore_and_drill_from_each_target_kind(kind: str, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    if kind == "local":
        target = target_toml("t", str(tmp_path / "repo"))
    elif kind == "rest":
        request.applymarker(pytest.mark.requires_rclone)
        rest: RestServer = request.getfixturevalue("rest_server")
        target = target_toml("t", rest.url("drill-" + tmp_path.name[-16:].lower()),
                             append_only=True)
    else:
        request.applymarker(pytest.mark.requires_sshd)
        ssh: SshServer = request.getfixturevalue("ssh_server")
        target = target_toml("t", ssh.sftp_url(tmp_path / "sftp-repo"),
                             ssh_identity=str(ssh.client_key_path),
                             ssh_host_key_fingerprint=ssh.host_key_fingerprint)
    o = Office(tmp_path, [target]).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    out = tmp_path / "restored"
    done = o.run("restore", "latest", "--to", str(out), "--json")
    assert done.code == 0, done.err
    doc = done.json()
    assert doc["ok"] is True and doc["missing"] == [] and doc["mismatched"] == []
    assert doc["files_checked"] == len(tree(o.data))
    assert tree(out / str(o.data).lstrip("/")) == tree(o.data)
    drill = o.run("drill", "--json")
    assert drill.code == 0, drill.err
    d = drill.json()
    assert set(d) >= DRILL_KEYS and d["ok"] is True and d["rto_s"] > 0
    report = Path(d["report"])
    assert report.exists() and report.with_suffix(".json.sig").exists()
    printed = Path(d["pdf"])
    assert printed.name == report.name.replace(".json", ".vi.pdf")
    assert printed.read_bytes().startswith(b"%PDF") and Path(f"{printed}.sig").exists()
    assert "ĐẠT" in printed.with_suffix(".html").read_text(encoding="utf-8")
    assert not (o.state / "drill-scratch").exists() or not any(
        (o.state / "drill-scratch").iterdir())


def test_restore_include_only_some_files(office: Office, tmp_path: Path) -> None:
    folder = office.data / "danh-sach-cu-tri"
    done = office.run("restore", "latest", "--to", str(tmp_path / "o"), "--include",
                      str(folder), "--json")
    assert done.code == 0, done.err
    restored = tree(tmp_path / "o" / str(office.data).lstrip("/"))
    assert restored and all(k.startswith("danh-sach-cu-tri/") for k in restored)
    assert done.json()["files_checked"] == len(restored)


def test_unknown_snapshot_exit_2_lists_nearest(office: Office, tmp_path: Path) -> None:
    snap = office.run("snapshots", "--json").json()[0]
    done = office.run("restore", "deadbeef", "--to", str(tmp_path / "o"))
    assert done.code == 2
    assert "no snapshot 'deadbeef'" in done.err and snap["short_id"] in done.err
    assert office.run("restore", snap["short_id"], "--to", str(tmp_path / "o")).code == 0


def test_refuses_live_folder_and_non_empty_dir(office: Office, tmp_path: Path) -> None:
    live = office.run("restore", "latest", "--to", str(office.data / "x"))
    assert live.code == 2 and "watched folder" in live.err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = office.run("restore", "latest", "--to", str(busy))
    assert refused.code == 2 and "not empty" in refused.err
    assert (busy / "keep.txt").read_text() == "mine"
    assert office.run("restore", "latest", "--to", str(busy), "--force").code == 0


def test_in_place_takes_a_pinned_safety_snapshot_first(office: Office) -> None:
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    original = sheet.read_bytes()
    sheet.write_text("bị mã hóa bởi kẻ tấn công", encoding="utf-8")
    first = office.run("snapshots", "--json").json()[0]["id"]
    done = office.run("restore", first, "--in-place", "--json")
    assert done.code == 0, done.err
    assert sheet.read_bytes() == original
    safety = done.json()["safety_snapshot"]
    snaps = {s["id"]: s for s in office.run("snapshots", "--json").json()}
    assert {"pinned", "pre-restore"} <= set(snaps[safety]["tags"])


def test_unreachable_target_exit_3(tmp_path: Path) -> None:
    o = Office(tmp_path, [target_toml("off", "rest:http://127.0.0.1:9/x/")]).write()
    o.run("init")
    done = o.run("restore", "latest", "--to", str(tmp_path / "o"))
    assert done.code == 3 and "unreachable" in done.err


# -- tamper cases: each fails with exit 1, names the problem, never says ok -----------------

def assert_failed(done_code: int, text: str, needle: str) -> None:
    assert done_code == 1, text
    assert needle in text
    assert '"ok": true' not in text and ": ok:" not in text


def test_corrupted_pack_fails_the_drill(office: Office) -> None:
    assert office.run("drill").code == 0  # the untouched twin
    packs = sorted((office.root / "repo" / "data").rglob("*"), key=lambda p: p.stat().st_size)
    pack = [p for p in packs if p.is_file()][-1]
    blob = bytearray(pack.read_bytes())
    for i in range(64, min(len(blob), 4096), 97):
        blob[i] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(blob))
    done = office.run("drill", "--json")
    assert_failed(done.code, done.out + done.err, "MISSING")
    assert "ciphertext verification failed" in done.err


def test_restored_file_that_differs_is_named(office: Office, tmp_path: Path) -> None:
    good = office.run("snapshots", "--json").json()[0]["id"]
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    text = sheet.read_text(encoding="utf-8")
    sheet.write_text(text.replace("Tổng số cử tri: ", "Tổng số cử tri: 9"), encoding="utf-8")
    forge_snapshot(office)  # new data, the old signed manifest
    done = office.run("drill", "--json")
    assert_failed(done.code, done.out + done.err, "to-bau-cu-01.txt")
    assert "SHA-256" in done.err or "size" in done.err
    twin = office.run("drill", "--snapshot", good, "--json")
    assert twin.code == 0, twin.err


def test_manifest_edited_after_signing_fails(office: Office) -> None:
    manifest = office.manifest_dir() / "secops-manifest.json"
    doc = json.loads(manifest.read_text())
    path = next(iter(doc["files"]))
    doc["files"][path][2] = "0" * 64
    manifest.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    forge_snapshot(office)
    done = office.run("restore", "latest", "--to", str(office.root / "o"))
    assert_failed(done.code, done.out + done.err, "BAD SIGNATURE")
    twin = office.run("restore", office.run("snapshots", "--json").json()[0]["id"],
                      "--to", str(office.root / "o2"))
    assert twin.code == 0, twin.err


def test_signature_from_another_key_fails(office: Office, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    pem = other.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    other_pub = tmp_path / "other.pub"
    other_pub.write_bytes(pem)
    done = office.run("restore", "latest", "--to", str(tmp_path / "o"), "--public-key",
                      str(other_pub))
    assert_failed(done.code, done.out + done.err, "signed by another key")
    missing = office.run("restore", "latest", "--to", str(tmp_path / "o3"), "--public-key",
                         str(tmp_path / "nope.pub"))
    assert missing.code == 2 and "no such file" in missing.err
    exported = tmp_path / "pub"
    assert office.run("keys", "export-public", "--out", str(exported)).code == 0
    twin = office.run("restore", "latest", "--to", str(tmp_path / "o2"), "--public-key",
                      str(exported / "office-ed25519.pub"))
    assert twin.code == 0, twin.err
