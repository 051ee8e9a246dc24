"""The watched folder as a Samba share, against the running daemon (docs/samba.md).

A clerk PC saving the way Word and Excel do over SMB raises nothing; an infected clerk PC
encrypting the share in place is stopped after a few files, the smbd child serving it is
the process stopped, and the alarm names the PC's address and the Samba user it logged in
as. The pre-attack snapshot restores every original.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from integration.corpus import sha_tree
from integration.daemon import Daemon, wait_for
from integration.detection import BAD, alerts, documents, kinds, make_office, proc_state, settled
from integration.servers import SambaServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg, pytest.mark.requires_smbd]


def test_word_and_excel_over_smb_are_saves_an_infected_pc_is_stopped_and_named(
        samba_server: SambaServer, tmp_path: Path) -> None:
    office = make_office(samba_server.office_root)
    data = office.data
    d = Daemon(office).start()
    attacker: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: "the open gate are on" in d.log(), 60, "the gate")
        wait_for(lambda: settled(office), 90, "the first backup")

        words = [p.relative_to(data).as_posix()
                 for p in documents(data, "ho-so-ung-vien/ung-vien-*.docx")[:6]]
        sheets = [p.relative_to(data).as_posix()
                  for p in documents(data, "ket-qua/ket-qua-to-*.xlsx")[:6]]
        for action, rels in (("word-save", words), ("excel-save", sheets)):
            done = subprocess.run(samba_server.clerk_argv(action, *rels), capture_output=True,
                                  text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
        wait_for(lambda: settled(office), 120, "the backups of the saves")
        assert [k for k in kinds(office) if k in BAD] == [], \
            [a for a in alerts(office) if a["kind"] in BAD]
        assert not any(p.name.startswith(("~$", "~WR")) for p in data.rglob("*"))

        # the twin: the same share, an infected PC
        before = sha_tree(data)
        attacker = subprocess.Popen(
            samba_server.clerk_argv("attack", "--progress", str(tmp_path / "progress.txt"),
                                    "--dir", "bien-ban"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: "integrity.frozen" in kinds(office) or attacker.poll() is not None,
                 120, "containment")
        [alarm] = [a for a in alerts(office) if a["kind"] == "ransomware.suspected"]
        processes = alarm["details"]["processes"]
        served = [p for p in processes if p.get("smb_client")]
        assert served, processes
        smbd = served[0]
        assert smbd["pid"] in samba_server.children(), "not the smbd child of this server"
        assert proc_state(smbd["pid"]) == "T", "the smbd serving the infected PC runs on"
        client = smbd["smb_client"]
        assert client["address"] == "127.0.0.1" and client["user"] == samba_server.user, client
        assert f"SMB: {samba_server.user} from 127.0.0.1" in smbd["user"]
        after = sha_tree(data)
        lost = [p for p, h in before.items() if after.get(p) != h]
        assert 0 < len(lost) <= 5, lost

        wait_for(lambda: "integrity.snapshot_pinned" in kinds(office), 60, "the pinned snapshot")
        pinned = next(a for a in alerts(office) if a["kind"] == "integrity.snapshot_pinned")
        snap = pinned["details"]["snapshots"]["local"]
        out = office.run("unfreeze", "--kill", "--json")
        assert out.code == 0, out.err
        assert smbd["pid"] in [p["pid"] for p in out.json()["processes"]
                               if p["result"] == "killed"]
        restored = tmp_path / "restored"
        done_restore = office.run("restore", snap["id"], "--target", "local", "--to",
                                  str(restored))
        assert done_restore.code == 0, done_restore.err
        got = sha_tree(restored / str(data).lstrip("/"))
        assert {p: got.get(p) for p in before} == before
    finally:
        if attacker is not None and attacker.poll() is None:
            attacker.send_signal(signal.SIGKILL)
            attacker.wait(30)
        d.stop()
        office.run("unfreeze", "--kill")
        for leftover in (office.state, office.root / "repo", office.config):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()
        for child in data.iterdir():  # the share folder itself belongs to the session
            shutil.rmtree(child) if child.is_dir() else child.unlink()
