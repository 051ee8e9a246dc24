"""The watched folder as a Samba share, against the running daemon (docs/samba.md).

A clerk PC saving the way Word and Excel do over SMB raises nothing; an infected clerk PC
encrypting the share in place is stopped after a few files, the smbd child serving it is
the process stopped, and the alarm names the PC's address and the Samba user it logged in
as. The pre-attack snapshot restores every original.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from integration.corpus import sha_tree
from integration.daemon import wait_for
from integration.detection import (
    BAD,
    alerts,
    assert_restores,
    attacking,
    contained,
    documents,
    kinds,
    make_office,
    pinned_snapshot,
    proc_state,
    settled,
    watching,
)
from integration.office import Office
from integration.servers import SambaServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg, pytest.mark.requires_smbd]


def test_word_and_excel_over_smb_are_saves_an_infected_pc_is_stopped_and_named(
        samba_server: SambaServer, tmp_path: Path) -> None:
    office = make_office(samba_server.office_root)
    data = office.data
    try:
        with watching(office):
            words = [p.relative_to(data).as_posix()
                     for p in documents(data, "ho-so-ung-vien/ung-vien-*.docx")[:6]]
            sheets = [p.relative_to(data).as_posix()
                      for p in documents(data, "ket-qua/ket-qua-to-*.xlsx")[:6]]
            for action, rels in (("word-save", words), ("excel-save", sheets)):
                done = subprocess.run(samba_server.clerk_argv(action, *rels),
                                      capture_output=True, text=True, timeout=300, check=False)
                assert done.returncode == 0, done.stderr[-2000:]
            wait_for(lambda: settled(office), 120, "the backups of the saves")
            assert [k for k in kinds(office) if k in BAD] == [], \
                [a for a in alerts(office) if a["kind"] in BAD]
            assert not any(p.name.startswith(("~$", "~WR")) for p in data.rglob("*"))

            # the twin: the same share, an infected PC
            before = sha_tree(data)
            argv = samba_server.clerk_argv("attack", "--progress", str(tmp_path / "p.txt"),
                                           "--dir", "bien-ban")
            with attacking(argv) as attacker:
                contained(office, attacker)
                smbd = infected_pc_stopped_and_named(office, samba_server, before)
                snap = pinned_snapshot(office)
                out = office.run("unfreeze", "--kill", "--json")
                assert out.code == 0, out.err
                killed = [p["pid"] for p in out.json()["processes"] if p["result"] == "killed"]
                assert smbd in killed, out.json()
            assert_restores(office, snap, before, tmp_path / "restored")
    finally:
        for leftover in (office.state, office.root / "repo", office.config):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()
        for child in data.iterdir():  # the share folder itself belongs to the session
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()


def infected_pc_stopped_and_named(office: Office, samba: SambaServer,
                                  before: dict[str, str]) -> int:
    """The alarm's stopped process is this server's smbd child (its pid returned), named by
    the PC's address and the Samba user; a few files damaged at most."""
    [alarm] = [a for a in alerts(office) if a["kind"] == "ransomware.suspected"]
    processes = alarm["details"]["processes"]
    served = [p for p in processes if p.get("smb_client")]
    assert served, processes
    smbd = served[0]
    assert smbd["pid"] in samba.children(), "not the smbd child of this server"
    assert proc_state(smbd["pid"]) == "T", "the smbd serving the infected PC runs on"
    client = smbd["smb_client"]
    assert client["address"] == "127.0.0.1" and client["user"] == samba.user, client
    assert f"SMB: {samba.user} from 127.0.0.1" in smbd["user"]
    after = sha_tree(office.data)
    lost = [p for p, h in before.items() if after.get(p) != h]
    assert 0 < len(lost) <= 5, lost
    return int(smbd["pid"])
