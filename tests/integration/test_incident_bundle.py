"""The incident's evidence bundle, made from a real incident (a shipped playbook run with
real restic and gpg), checked the way the police do: a fresh GNUPGHOME holding only the
office's exported public key, plain ``gpg --verify``, ``tar`` and ``sha256sum -c``, then
``secops bundle verify`` with no secops config. Every tampered bundle fails naming what
failed; its untouched twin passes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.office import Office, Result, office_with_incident
from integration.servers import GpgHome
from secops.reports.bundle_verify import verify_bundle

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

CHECKS = {"signature", "unpack", "sha256sums", "custody", "audit-excerpt", "report-signer"}

def secops(*args: str, config: Path | None = None, home: Path) -> Result:
    """The real CLI in a minimal environment; without ``config`` as on the police's machine."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    argv = [sys.executable, "-m", "secops", *(["--config", str(config)] if config else []),
            *args]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
           "GNUPGHOME": str(home)}
    return subprocess.run(["gpg", "--batch", "--no-tty", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True,
                   timeout=30, check=False)


@dataclass
class Made:
    office: Office
    incident: str
    bundle: Path
    signature: Path
    office_key: Path     # office-gpg.asc from `keys export-public`
    fingerprint: str

    def report(self, *args: str) -> Result:
        return secops("report", "incident", self.incident, *args, config=self.office.config,
                      home=self.office.root)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("bundle-office")
    try:
        office, incident = office_with_incident(root)
        exported = office.run("keys", "export-public", "--out", str(root / "pub"), "--json")
        assert exported.code == 0, exported.err
        made = Made(office, incident, Path(), Path(), root / "pub" / "office-gpg.asc",
                    exported.json()["gpg_fingerprint"])
        done = made.report("--json")
        assert done.code == 0, done.err
        doc = done.json()
        assert set(doc) == {"bundle", "signature"}
        made.bundle, made.signature = Path(doc["bundle"]), Path(doc["signature"])
        yield made
    finally:
        kill_agent(root / "state" / "gnupg")


@pytest.fixture
def police_home() -> Iterator[Path]:
    """A fresh GNUPGHOME (short path, 0700) for the police's own checks."""
    home = Path(tempfile.mkdtemp(prefix="p", dir="/tmp"))  # short: gpg-agent's socket path
    home.chmod(0o700)
    yield home
    kill_agent(home)
    shutil.rmtree(home, ignore_errors=True)


def verify(bundle: Path, *args: str, home: Path) -> tuple[int, dict[str, Any], str]:
    done = secops("bundle", "verify", str(bundle), *args, "--json", home=home)
    return done.code, done.json(), done.err


def failed(doc: dict[str, Any]) -> set[str]:
    return {c["name"] for c in doc["checks"] if not c["ok"]}


def detail(doc: dict[str, Any], name: str) -> str:
    return str(next(c["detail"] for c in doc["checks"] if c["name"] == name))


# -- the untouched bundle ---------------------------------------------------------------------

def test_the_police_verify_with_plain_gpg_and_sha256sum(made: Made, police_home: Path,
                                                        tmp_path: Path) -> None:
    assert made.bundle.name.endswith(".tar.gz") and made.signature.name.endswith(".tar.gz.asc")
    for f in (made.bundle, made.signature):
        assert f.stat().st_mode & 0o777 == 0o600
    # the act is in the audit log, with the bundle's hash
    records = [json.loads(line) for line in
               (made.office.state / "audit" / "audit.jsonl").read_text().splitlines()]
    act = next(r for r in records if r["kind"] == "report.incident")
    assert act["data"]["sha256"] == hashlib.sha256(made.bundle.read_bytes()).hexdigest()

    # a fresh GNUPGHOME that holds only the office's exported public key
    assert gpg(police_home, "--import", str(made.office_key)).returncode == 0
    keys = gpg(police_home, "--with-colons", "--list-keys").stdout
    assert sum(ln.startswith("pub:") for ln in keys.splitlines()) == 1  # only the office's
    assert next(ln.split(":")[9] for ln in keys.splitlines() if ln.startswith("fpr:")) == \
        made.fingerprint
    copy = tmp_path / made.bundle.name
    shutil.copy(made.bundle, copy)
    shutil.copy(made.signature, tmp_path / made.signature.name)
    checked = gpg(police_home, "--verify", str(tmp_path / made.signature.name), str(copy))
    assert checked.returncode == 0, checked.stderr
    assert "Good signature" in checked.stderr and made.fingerprint in checked.stderr.replace(
        " ", "")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "xzf", str(copy), "-C", str(unpacked)], check=True, timeout=60)
    top = unpacked / made.incident
    sums = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=top, capture_output=True,
                          text=True, timeout=60, check=False)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    listed = {ln.split("  ", 1)[1] for ln in (top / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    assert listed == on_disk - {"SHA256SUMS"}  # every other file, nothing unlisted
    assert all(ln.endswith(": OK") for ln in sums.stdout.splitlines())
    for name in ("report.html", "report.md", "report.pdf", "timeline.json", "incident.json",
                 "evidence/custody.jsonl", "evidence/processes.json",
                 "audit/audit-excerpt.jsonl", "audit/checkpoints.jsonl", "audit/excerpt.json",
                 "keys/office-ed25519.pub", "keys/audit-root.pub", "README.txt"):
        assert name in listed, name
    assert (top / "report.pdf").read_bytes().startswith(b"%PDF")
    html = (top / "report.html").read_text(encoding="utf-8")
    assert "Loại và số lượng dữ liệu cá nhân" in html and made.fingerprint in html
    report = json.loads((top / "report.json").read_text(encoding="utf-8"))
    voters = report["breach"]["personal_data"]["files"][0]
    assert voters["records"] == 30 and voters["source"] == "snapshot"  # the pinned snapshot
    # the keys as `keys export-public` prints them, with the file each is in
    exported = made.office.run("keys", "export-public", "--json").json()
    md = (top / "report.md").read_text(encoding="utf-8")
    assert f"{exported['ed25519_key_id']}: tệp office-ed25519.pub" in md
    assert f"{exported['audit_root_id']}: tệp audit-root.pub" in md
    assert report["signature"]["gpg_fingerprint"] == made.fingerprint
    excerpt = json.loads((top / "audit" / "excerpt.json").read_text())
    first = json.loads((top / "audit" / "audit-excerpt.jsonl").read_text().splitlines()[0])
    assert first["seq"] == excerpt["start_seq"] and first["prev"] == excerpt["prev"]
    assert excerpt["start_seq"] in excerpt["checkpoint_seqs"]  # starts at a vouched record
    assert excerpt["end_seq"] in excerpt["checkpoint_seqs"]
    assert "gpg --homedir gpg-kiem-tra --verify" in (top / "README.txt").read_text()

    # ... and secops, without any config, agrees
    code, doc, err = verify(copy, "--office-key", str(made.office_key), home=tmp_path)
    assert code == 0, err
    assert doc["ok"] and {c["name"] for c in doc["checks"]} == CHECKS
    assert made.fingerprint in detail(doc, "signature")


def test_the_bundle_is_deterministic(made: Made) -> None:
    with tarfile.open(made.bundle, "r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and all(n.split("/")[0] == made.incident for n in names)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == \
        {(0, 0, "", "", members[0].mtime)}
    assert all(m.isfile() or m.isdir() for m in members)
    assert made.bundle.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime 0


# -- tampering: each fails, naming what failed ------------------------------------------------

def test_one_flipped_byte_fails_the_signature(made: Made, tmp_path: Path) -> None:
    bad = tmp_path / made.bundle.name
    data = bytearray(made.bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    code, doc, err = verify(bad, "--signature", str(made.signature), "--office-key",
                            str(made.office_key), home=tmp_path)
    assert code == 1 and "signature" in failed(doc)
    assert "BAD signature" in detail(doc, "signature")
    assert "verification FAILED: signature" in err


def test_a_signature_by_another_key_fails(made: Made, tmp_path: Path,
                                          police_gpg: GpgHome) -> None:
    bundle = tmp_path / made.bundle.name
    shutil.copy(made.bundle, bundle)
    other = police_gpg.run("--detach-sign", "--armor", "--output", f"{bundle}.asc",
                           str(bundle))
    assert other.returncode == 0, other.stderr
    code, doc, _ = verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    assert code == 1 and failed(doc) == {"signature"}
    assert "another key" in detail(doc, "signature")
    # also named when checked against the keyring that holds both keys by fingerprint
    code, doc, _ = verify(bundle, "--office-key", made.fingerprint, "--gnupghome",
                          str(police_gpg.home), home=tmp_path)
    assert code == 1 and "signature" in failed(doc)


def repack(made: Made, tmp_path: Path, edit: Any, resign: bool = False) -> Path:
    """Unpack, ``edit(top)``, pack again with plain tar; re-sign with the office key if
    asked (an insider with the office server's keys)."""
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["tar", "xzf", str(made.bundle), "-C", str(work)], check=True, timeout=60)
    edit(work / made.incident)
    out = tmp_path / made.bundle.name
    subprocess.run(["tar", "czf", str(out), "-C", str(work), made.incident], check=True,
                   timeout=60)
    if resign:
        signed = gpg(made.office.state / "gnupg", "--yes", "--detach-sign", "--armor",
                     "--output", f"{out}.asc", str(out))
        assert signed.returncode == 0, signed.stderr
    else:
        shutil.copy(made.signature, f"{out}.asc")
    return out


def resum(top: Path) -> None:
    lines = (top / "SHA256SUMS").read_text().splitlines()
    fixed = []
    for ln in lines:
        name = ln.split("  ", 1)[1]
        fixed.append(f"{hashlib.sha256((top / name).read_bytes()).hexdigest()}  {name}")
    (top / "SHA256SUMS").write_text("\n".join(fixed) + "\n")


def edit_report(top: Path) -> None:
    html = top / "report.html"
    html.write_text(html.read_text(encoding="utf-8").replace("30", "3"), encoding="utf-8")


def test_a_report_edited_after_signing_fails(made: Made, tmp_path: Path) -> None:
    code, doc, err = verify(repack(made, tmp_path, edit_report), "--office-key",
                            str(made.office_key), home=tmp_path)
    assert code == 1 and failed(doc) == {"signature"}, doc
    assert [c["name"] for c in doc["checks"]] == ["signature"]  # nothing unpacked after it
    assert "BAD signature" in detail(doc, "signature") and "signature" in err


def test_a_report_edited_and_resigned_fails_the_sums(made: Made, tmp_path: Path) -> None:
    code, doc, err = verify(repack(made, tmp_path, edit_report, resign=True), "--office-key",
                            str(made.office_key), home=tmp_path)
    assert code == 1 and failed(doc) == {"sha256sums"}, doc
    assert "report.html" in detail(doc, "sha256sums") and "sha256sums" in err


def test_an_edited_audit_line_fails_even_when_resigned(made: Made, tmp_path: Path) -> None:
    def edit(top: Path) -> None:
        log = top / "audit" / "audit-excerpt.jsonl"
        lines = log.read_text(encoding="utf-8").splitlines()
        lines[1] = lines[1].replace('"actor":"', '"actor":"x', 1)  # whoever did it
        log.write_text("\n".join(lines) + "\n", encoding="utf-8")
        resum(top)

    code, doc, err = verify(repack(made, tmp_path, edit, resign=True), "--office-key",
                            str(made.office_key), home=tmp_path)
    assert code == 1 and failed(doc) == {"audit-excerpt"}, doc
    assert "audit-excerpt" in err


def test_an_edited_evidence_item_fails_the_custody_chain(made: Made, tmp_path: Path) -> None:
    def edit(top: Path) -> None:
        (top / "evidence" / "users.json").write_text('{"users": []}\n')
        resum(top)

    code, doc, _ = verify(repack(made, tmp_path, edit, resign=True), "--office-key",
                          str(made.office_key), home=tmp_path)
    assert code == 1 and failed(doc) == {"custody"}, doc
    assert "users.json" in detail(doc, "custody")


# -- encryption to the police -----------------------------------------------------------------

def test_encrypted_to_the_police_opens_only_with_their_key(
        made: Made, tmp_path: Path, police_home: Path, police_gpg: GpgHome,
        custodian_gpg: GpgHome) -> None:
    police_key = tmp_path / "police.asc"
    police_key.write_text(police_gpg.export_public())
    done = made.report("--encrypt-to", str(police_key), "--json")
    assert done.code == 0, done.err
    bundle, sig = Path(done.json()["bundle"]), Path(done.json()["signature"])
    assert bundle.name.endswith(".tar.gz.gpg") and sig.name == f"{bundle.name}.asc"
    assert not bundle.read_bytes().startswith(b"\x1f\x8b")  # no plaintext tar.gz
    # plain gpg: the signature covers the encrypted file
    assert gpg(police_home, "--import", str(made.office_key)).returncode == 0
    checked = gpg(police_home, "--verify", str(sig), str(bundle))
    assert checked.returncode == 0 and "Good signature" in checked.stderr
    # only the police can open it
    assert custodian_gpg.run("--output", str(tmp_path / "x.tar.gz"), "--decrypt",
                             str(bundle)).returncode != 0
    code, doc, _ = verify(bundle, "--gnupghome", str(custodian_gpg.home), "--office-key",
                          str(made.office_key), home=tmp_path)
    assert code == 1 and "decrypt" in failed(doc)
    opened = police_gpg.run("--status-fd", "2", "--output", str(tmp_path / "plain.tar.gz"),
                            "--decrypt", str(bundle))
    # (exit 2 only because the police keyring lacks the office key for the inner signature)
    assert b"[GNUPG:] DECRYPTION_OKAY" in opened.stderr, opened.stderr
    assert (tmp_path / "plain.tar.gz").read_bytes().startswith(b"\x1f\x8b")
    code, doc, err = verify(bundle, "--gnupghome", str(police_gpg.home), "--office-key",
                            str(made.office_key), home=tmp_path)
    assert code == 0, err
    assert {c["name"] for c in doc["checks"]} == CHECKS | {"decrypt"}


# -- a missing signing key ------------------------------------------------------------------

def test_a_missing_signing_key_is_a_clear_error_and_leaves_nothing(made: Made) -> None:
    home = made.office.state / "gnupg"
    away = made.office.state / "gnupg.away"
    reports = made.office.state / "reports"
    before = sorted(p.name for p in reports.iterdir())
    kill_agent(home)
    home.rename(away)
    try:
        done = made.report("--json")
    finally:
        kill_agent(home)
        shutil.rmtree(home, ignore_errors=True)
        away.rename(home)
    assert done.code == 3, done.err
    assert "office GPG home" in done.err and "does not exist" in done.err
    assert "hint:" in done.err and done.out == ""
    assert sorted(p.name for p in reports.iterdir()) == before  # no unsigned bundle


def test_an_expired_signing_key_is_a_clear_error(police_home: Path) -> None:
    from secops.errors import SigningError
    from secops.layout import StateDir
    from secops.reports.bundle import office_signer

    home = police_home / "gnupg"
    home.mkdir(mode=0o700)
    made = gpg(home, "--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key",
               "Old Office <old@tan-ky.invalid>", "ed25519", "sign", "seconds=1")
    assert made.returncode == 0, made.stderr
    time.sleep(2)
    try:
        with pytest.raises(SigningError) as e:
            office_signer(StateDir(police_home))
    finally:
        kill_agent(home)
    assert e.value.exit_code == 3
    assert "could not sign with the office key" in str(e.value) and "unexpired" in str(e.value)


# -- path confinement ---------------------------------------------------------------------------

def _tar(tmp_path: Path, entries: list[tarfile.TarInfo]) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info in entries:
            data = b"x" * info.size if info.isreg() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _signed(path: Path, signer: GpgHome) -> Path:
    """Sign ``path`` (the signature is checked first: an unsigned one is never unpacked) and
    return the signer's public key file, to pass as the pinned office key."""
    done = signer.run("--yes", "--detach-sign", "--armor", "--output", f"{path}.asc", str(path))
    assert done.returncode == 0, done.stderr
    key = path.with_name("signer.asc")
    key.write_text(signer.export_public())
    return key


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1,
          link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize("entry,why", [
    (_info("INC-1/../../escaped"), "escaping path"),
    (_info("/etc/evil"), "absolute"),
    (_info("INC-1/link", tarfile.SYMTYPE, link="/etc/passwd"), "links, devices"),
    (_info("INC-1/hard", tarfile.LNKTYPE, link="INC-1/report.md"), "links, devices"),
    (_info("INC-1/dev", tarfile.CHRTYPE), "links, devices"),
    (_info("OTHER/x"), "outside the bundle's top folder"),
])
def test_unpacking_is_confined(tmp_path: Path, entry: tarfile.TarInfo, why: str,
                               police_gpg: GpgHome) -> None:
    bundle = _tar(tmp_path, [_info("INC-1/report.md"), entry])
    key = _signed(bundle, police_gpg)
    report = verify_bundle(bundle, gnupghome=tmp_path / "g", public_key_file=key)
    unpack = next(c for c in report.checks if c.name == "unpack")
    assert report.checks[0].name == "signature" and report.checks[0].ok
    assert not report.ok and not unpack.ok and why in unpack.detail
    assert not (tmp_path.parent / "escaped").exists() and not Path("/etc/evil").exists()


def test_an_unlisted_file_fails_the_sums(tmp_path: Path, police_gpg: GpgHome) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    sums = f"{digest}  report.md\n".encode()
    info = _info("INC-1/SHA256SUMS", size=len(sums))
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_info("INC-1/report.md"), io.BytesIO(b"x"))
        tar.addfile(_info("INC-1/extra.txt"), io.BytesIO(b"x"))
        tar.addfile(info, io.BytesIO(sums))
    report = verify_bundle(path, gnupghome=tmp_path / "g",
                           public_key_file=_signed(path, police_gpg))
    sums_check = next(c for c in report.checks if c.name == "sha256sums")
    assert not sums_check.ok and "extra.txt: not listed" in sums_check.detail
    assert "report.md" not in sums_check.detail  # the listed file matches
