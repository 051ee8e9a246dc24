"""The police steps of a bundle's README.txt, run as written: the command lines are read out
of the README.txt inside a real bundle (plain, and encrypted to the police's key) and run
one by one with real bash, gpg, tar and sha256sum (and, for step 4, the secops CLI) in a
folder holding only what the officer holds: the bundle, its signature, and the office's
public keys. Every command must exit 0; the fingerprint printed before the import must be
the office's; the signature must be good."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration.office import Office, office_with_incident
from integration.servers import GpgHome
from secops.reports.bundle import COMMAND_INDENT

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

FINGERPRINT = re.compile(r"\b((?:[0-9A-F]{4} ?){5} (?: ?[0-9A-F]{4}){5})\b")


@dataclass
class Bundle:
    path: Path
    signature: Path


@dataclass
class Made:
    office: Office
    incident: str
    public: Path          # `secops keys export-public --out`: office-gpg.asc, audit-root.pub
    fingerprint: str
    plain: Bundle
    encrypted: Bundle


@dataclass
class Ran:
    line: str
    code: int
    output: str


def kill_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True,
                   timeout=30, check=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, police_gpg: GpgHome) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("police-office")
    try:
        office, incident = office_with_incident(root)
        exported = office.run("keys", "export-public", "--out", str(root / "pub"), "--json")
        assert exported.code == 0, exported.err
        (root / "police.asc").write_text(police_gpg.export_public(), encoding="utf-8")
        bundles = []
        for extra in ([], ["--encrypt-to", str(root / "police.asc")]):
            done = office.run("report", "incident", incident, *extra, "--json")
            assert done.code == 0, done.err
            bundles.append(Bundle(Path(done.json()["bundle"]), Path(done.json()["signature"])))
        yield Made(office, incident, root / "pub", exported.json()["gpg_fingerprint"],
                   *bundles)
    finally:
        kill_agent(root / "state" / "gnupg")


@pytest.fixture
def desk() -> Iterator[Path]:
    """The officer's working folder (short: gpg-agent's socket path must fit)."""
    folder = Path(tempfile.mkdtemp(prefix="ps", dir="/tmp"))
    yield folder
    for home in folder.glob("gpg-*"):
        kill_agent(home)
    shutil.rmtree(folder, ignore_errors=True)


def readme_of(bundle: Bundle, incident: str, police: GpgHome, scratch: Path) -> str:
    """README.txt as it is inside the bundle (decrypted aside, for an encrypted one)."""
    data = bundle.path
    if bundle.path.name.endswith(".gpg"):
        data = scratch / "readme-only.tar.gz"
        opened = police.run("--skip-verify", "--output", str(data), "--decrypt",
                            str(bundle.path))
        assert opened.returncode == 0, opened.stderr
    with tarfile.open(data, "r:gz") as tar:
        member = tar.extractfile(f"{incident}/README.txt")
        assert member is not None
        return member.read().decode("utf-8")


def documented_linux_steps(readme: str) -> dict[str, list[str]]:
    """The command lines of sections A and B (steps 1-4), for each language."""
    steps: dict[str, list[str]] = {}
    for block in readme.split("=" * 78)[1:]:
        lines = block.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("A. "))
        end = next(i for i, ln in enumerate(lines) if ln.startswith("C. "))
        lang = "vi" if "KIỂM TRA" in lines[start] else "en"
        steps[lang] = [ln[COMMAND_INDENT:] for ln in lines[start:end]
                       if ln.startswith(" " * COMMAND_INDENT)
                       and not ln.startswith(" " * (COMMAND_INDENT + 1))]
    assert set(steps) == {"vi", "en"}, readme
    return steps


def run_as_written(lines: list[str], cwd: Path, env: dict[str, str]) -> list[Ran]:
    """Each line through bash, in order, in the folder the ``cd`` lines lead to."""
    ran = []
    for line in lines:
        if line.startswith("cd "):
            cwd = (cwd / line.removeprefix("cd ").strip()).resolve()
            assert cwd.is_dir(), line
            ran.append(Ran(line, 0, ""))
            continue
        done = subprocess.run(["bash", "--noprofile", "--norc", "-c", line], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        ran.append(Ran(line, done.returncode, done.stdout + done.stderr))
        assert done.returncode == 0, f"{line}\nexit {done.returncode}\n{done.stdout}" \
                                     f"{done.stderr}"
    return ran


def officer_env(desk: Path, police: GpgHome) -> dict[str, str]:
    """PATH with ``secops`` (this checkout's CLI), HOME of their own, their own keyring."""
    bin_dir = desk / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "secops"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m secops "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    home = desk / ".home"
    home.mkdir()
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home), "LANG": "C.UTF-8",
            "GNUPGHOME": str(police.home)}


def fingerprints(text: str) -> list[str]:
    return [m.replace(" ", "") for m in FINGERPRINT.findall(text)]


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_documented_linux_steps_run_as_written(made: Made, police_gpg: GpgHome,
                                                   desk: Path, kind: str, lang: str) -> None:
    bundle: Bundle = getattr(made, kind)
    scratch = desk / ".scratch"  # only to read README.txt out of the bundle beforehand
    scratch.mkdir()
    lines = documented_linux_steps(readme_of(bundle, made.incident, police_gpg, scratch))[lang]
    for f in (bundle.path, bundle.signature, made.public / "office-gpg.asc",
              made.public / "audit-root.pub"):
        shutil.copy2(f, desk / f.name)

    ran = run_as_written(lines, desk, officer_env(desk, police_gpg))

    by_kind = {r.line.split()[3] if r.line.startswith("gpg --homedir") else r.line.split()[0]:
               r for r in ran}
    shown = by_kind["--show-keys"]
    assert fingerprints(shown.output) == [made.fingerprint]  # what to compare, before import
    assert lines.index(shown.line) < lines.index(by_kind["--import"].line)
    verified = by_kind["--verify"]
    assert "Good signature" in verified.output
    assert made.fingerprint in fingerprints(verified.output)
    decrypts = [r for r in ran if "--decrypt" in r.line]
    if kind == "encrypted":
        assert len(decrypts) == 1
        argv = decrypts[0].line.split()
        out, src = argv[argv.index("--output") + 1], argv[argv.index("--decrypt") + 1]
        assert src == bundle.path.name and out != src
        assert "Signature made" not in decrypts[0].output  # nothing inside to check
        assert (desk / out).read_bytes().startswith(b"\x1f\x8b")
    else:
        assert decrypts == []
    sums = by_kind["sha256sum"].output.splitlines()
    assert sums and all(s.endswith(": OK") for s in sums)
    assert [r.line.split()[:2] for r in ran if r.line.startswith("secops")] == [
        ["secops", "bundle"], ["secops", "audit"]]
