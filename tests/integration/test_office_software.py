"""The office's real software against the running daemon: no alarm, every program exits 0.

Each case was a false alarm that froze the tree and stopped the program (issue 14):
LibreOffice (UNO ``store()``, a clerk's Ctrl+S) saving Word- and Excel-made documents in
place writes ``_rels/.rels`` first; ``mogrify`` saves by rename-to-backup, an empty file,
then the image; ``git`` writes zlib objects without an extension; ``cp -r``, ``mv``,
``rm -rf`` and ``zip``/``unzip`` of a folder carry its canaries along; a bulk rename to an
extension nobody listed. One daemon serves every case (it starts once); its twin, at the
end, encrypts the very files LibreOffice saved and must be caught.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from integration.corpus import sha_tree
from integration.daemon import wait_for
from integration.detection import (
    BAD,
    alerts,
    attacking,
    contained,
    documents,
    kinds,
    make_office,
    proc_state,
    ransim,
    settled,
    watching,
)

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg,
              pytest.mark.requires_libreoffice]

LO_SAVE = Path(__file__).with_name("lo_save.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-uno


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False, env={**os.environ, "LANG": "C.UTF-8"})
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def first_member(path: Path) -> str:
    return zipfile.ZipFile(io.BytesIO(path.read_bytes())).namelist()[0]


def quiet(office_kinds: list[str]) -> list[str]:
    return [k for k in office_kinds if k in BAD]


def test_office_software_raises_no_alarm_and_its_twin_does(tmp_path: Path) -> None:
    office = make_office(tmp_path)
    data = office.data
    with watching(office) as d:
        # LibreOffice saves Word- and Excel-made documents in place
        docs = documents(data, "ho-so-ung-vien/*.docx")[:5] + documents(data, "ket-qua/*.xlsx")[:5]
        assert all(first_member(p) == "[Content_Types].xml" for p in docs)
        run(SYSTEM_PYTHON, LO_SAVE, "--profile", tmp_path / "lo-profile", "--edit",
            " Đã kiểm tra.", *docs)
        assert all(first_member(p) == "_rels/.rels" for p in docs), \
            "LibreOffice did not write its own member order"
        assert quiet(kinds(office)) == [], "LibreOffice saves"

        # mogrify resizes scans in place
        scans = documents(data, "scan/*.jpg")[:6]
        run("mogrify", "-resize", "50%", *scans)
        assert quiet(kinds(office)) == [], "mogrify"

        # a git repository of the minutes
        git = ["git", "-c", "user.name=Van thu", "-c", "user.email=vanthu@example.invalid"]
        run(*git, "init", "-q", cwd=data / "bien-ban")
        run(*git, "add", "-A", cwd=data / "bien-ban")
        run(*git, "commit", "-q", "-m", "Bien ban hop", cwd=data / "bien-ban")

        # a folder with its canaries copied, moved, zipped and unzipped, deleted
        assert any((data / "bien-ban").glob("*secops-canary*"))
        run("cp", "-r", data / "bien-ban", data / "bien-ban-ban-sao")
        run("mv", data / "ket-qua", data / "ket-qua-2026")
        run("zip", "-q", "-r", tmp_path / "ho-so.zip", "ho-so-ung-vien", cwd=data)
        run("unzip", "-q", tmp_path / "ho-so.zip", "-d", data / "giai-nen")
        run("rm", "-rf", data / "bien-ban-ban-sao")

        # a bulk rename to an extension nobody listed
        for p in documents(data, "danh-sach-cu-tri/thon-1/*.csv")[:8]:
            p.rename(p.with_suffix(".cu"))

        wait_for(lambda: settled(office), 120, "the backups of the work")
        assert quiet(kinds(office)) == [], [a for a in alerts(office) if a["kind"] in BAD]
        assert "ransomware.suspected" not in d.log()

        # the twin: the files LibreOffice saved, encrypted in place, are still judged
        before = sha_tree(data)
        argv = ransim(office, "keep-ext", tmp_path / "p.txt", "--only",
                      "ho-so-ung-vien/ung-vien-*.docx")
        with attacking(argv) as attacker:
            contained(office, attacker)
            assert proc_state(attacker.pid) == "T", "the attacker was not stopped"
            after = sha_tree(data)
            lost = [p for p, h in before.items() if after.get(p) != h]
            assert 0 < len(lost) <= 5, lost
    shutil.rmtree(tmp_path / "lo-profile", ignore_errors=True)
