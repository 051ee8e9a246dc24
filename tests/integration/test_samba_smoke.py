"""Smoke tests of the Samba share and the clerk PC (smbclerk.py), with no secops daemon.

The ``samba_server`` fixture is the real smbd on loopback; the clerk is its own process
talking SMB3 to it. These prove the pieces the detection tests build on: Word's and Excel's
save steps arrive on disk as those steps, smbstatus names the smbd child serving a client,
the attack encrypts every file, and ``stop()`` leaves no smbd behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import smbclient
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from secops.demo.documents import docx_bytes, docx_paragraphs, xlsx_bytes, xlsx_rows

from .servers import SambaServer, free_port, minimal_env, process_alive, tcp_connectable

pytestmark = pytest.mark.requires_smbd

LINE = "Bổ sung: tổ 3 kiểm lại phiếu"
DEADLINE = 60.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout:.0f}s: {what}")
        time.sleep(0.05)


def run_clerk(server: SambaServer, home: Path, *action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(server.clerk_argv(*action), capture_output=True, text=True,
                          env=minimal_env(home), timeout=120, check=False)


def gone(pid: int) -> bool:
    return not process_alive(pid)


def proc_status(pid: int, field: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split()[1:]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def is_hex8(name: str) -> bool:
    return len(name) == 8 and all(c in "0123456789ABCDEF" for c in name)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def scratch(samba_server: SambaServer, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh folder in the share for one test (the share is the whole session's)."""
    folder = samba_server.path / f"smoke-{request.node.name}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def smb_client() -> Iterator[None]:
    """smbclient in this process: every pooled connection closed afterwards."""
    yield
    smbclient.reset_connection_cache(fail_on_error=False)


class Recorder(FileSystemEventHandler):
    """inotify events under a folder, as (kind, path, dest) relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def rel(self, path: bytes | str) -> str:
        text = os.fsdecode(path)
        return Path(text).relative_to(self.root).as_posix() if text else ""

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "moved", "deleted"):
            return
        with self.lock:
            self.events.append((event.event_type, self.rel(event.src_path),
                                self.rel(event.dest_path)))

    def seen(self, event: tuple[str, str, str]) -> bool:
        with self.lock:
            return event in self.events

    def clear(self) -> None:
        with self.lock:
            self.events.clear()

    def of(self, folder: str) -> list[tuple[str, str, str]]:
        with self.lock:
            return [e for e in self.events if e[1].rpartition("/")[0] == folder]


@contextlib.contextmanager
def recording(root: Path) -> Iterator[Recorder]:
    """The created/moved/deleted files under ``root`` from now on (inotify, via watchdog)."""
    handler = Recorder(root)
    observer = Observer()
    observer.schedule(handler, str(root), recursive=True)
    observer.start()
    try:
        # the watch is set in the observer's thread: wait until it sees a file come and go
        sentinel = root / "sentinel"
        sentinel.write_bytes(b"")
        wait_until(lambda: handler.seen(("created", "sentinel", "")), "the watch is set")
        sentinel.unlink()
        wait_until(lambda: handler.seen(("deleted", "sentinel", "")), "the watch sees deletes")
        handler.clear()
        yield handler
    finally:
        observer.stop()
        observer.join(timeout=30)


def test_word_and_excel_saves_leave_valid_documents(
    samba_server: SambaServer, scratch: Path, tmp_path: Path
) -> None:
    (scratch / "to-1").mkdir()
    word_files = {
        scratch / "Biên bản kiểm phiếu.docx": ["Biên bản kiểm phiếu", "Tổ 1: 412 phiếu"],
        scratch / "to-1" / "thong-bao.docx": ["Thông báo", "Họp lúc 8 giờ"],
    }
    excel_file = scratch / "ket-qua.xlsx"
    rows: list[list[str | int]] = [["Ứng cử viên", "Số phiếu"], ["Nguyễn Văn An", 301]]
    for path, paragraphs in word_files.items():
        path.write_bytes(docx_bytes(paragraphs))
    excel_file.write_bytes(xlsx_bytes(rows))
    inodes = {p: p.stat().st_ino for p in [*word_files, excel_file]}

    def rel(path: Path) -> str:
        return path.relative_to(samba_server.path).as_posix()

    with recording(scratch) as recorder:
        word = run_clerk(samba_server, tmp_path, "word-save", "--line", LINE,
                         *(rel(p) for p in word_files))
        assert word.returncode == 0, word.stderr
        excel = run_clerk(samba_server, tmp_path, "excel-save", "--line", LINE,
                          rel(excel_file))
        assert excel.returncode == 0, excel.stderr
        # the last step of each save: its owner file deleted
        wait_until(lambda: recorder.seen(("deleted", "~$ket-qua.xlsx", "")),
                   "Excel's owner file deleted")
        wait_until(lambda: recorder.seen(("deleted", "to-1/~$thong-bao.docx", "")),
                   "Word's owner file deleted")

    for path, paragraphs in word_files.items():
        assert docx_paragraphs(path.read_bytes()) == [*paragraphs, LINE]
    assert xlsx_rows(excel_file.read_bytes()) == [*rows, [LINE]]
    left = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file())
    assert left == ["Biên bản kiểm phiếu.docx", "ket-qua.xlsx", "to-1/thong-bao.docx"]
    for path, inode in inodes.items():
        st = path.stat()
        assert st.st_ino != inode, f"{path.name} was rewritten, not replaced"
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o644)  # force user root, create mask

    # the steps as inotify saw them, in order, per folder
    name = "Biên bản kiểm phiếu.docx"
    assert recorder.of("")[:6] == [
        ("created", f"~${name}", ""),
        ("created", "~WRD0000.tmp", ""),
        ("moved", name, "~WRL0001.tmp"),
        ("moved", "~WRD0000.tmp", name),
        ("deleted", "~WRL0001.tmp", ""),
        ("deleted", f"~${name}", ""),
    ]
    assert recorder.of("to-1") == [
        ("created", "to-1/~$thong-bao.docx", ""),
        ("created", "to-1/~WRD0001.tmp", ""),
        ("moved", "to-1/thong-bao.docx", "to-1/~WRL0002.tmp"),
        ("moved", "to-1/~WRD0001.tmp", "to-1/thong-bao.docx"),
        ("deleted", "to-1/~WRL0002.tmp", ""),
        ("deleted", "to-1/~$thong-bao.docx", ""),
    ]
    owner, new, old, swap, drop, unowned = recorder.of("")[6:]
    assert owner == ("created", "~$ket-qua.xlsx", "")
    assert new[0] == "created" and is_hex8(new[1])
    assert old[:2] == ("moved", "ket-qua.xlsx")
    assert old[2].endswith(".tmp") and is_hex8(old[2].removesuffix(".tmp"))
    assert swap == ("moved", new[1], "ket-qua.xlsx")
    assert drop == ("deleted", old[2], "")
    assert unowned == ("deleted", "~$ket-qua.xlsx", "")


def test_status_names_the_clerk_and_its_smbd_child(
    samba_server: SambaServer, scratch: Path, smb_client: None
) -> None:
    target = scratch / "danh-sach.csv"
    target.write_text("ho_ten,to\nNguyễn Văn An,1\n", encoding="utf-8")
    unc = samba_server.unc(target.relative_to(samba_server.path).as_posix())
    kwargs = samba_server.client_kwargs()
    with smbclient.open_file(unc, mode="rb", share_access="r", **kwargs) as f:
        assert f.read().startswith(b"ho_ten")
        status = samba_server.status_json()
        opens = status["open_files"][str(target)]["opens"]
        assert len(opens) == 1
        pid = int(next(iter(opens.values()))["server_id"]["pid"])
        sessions = [s for s in status["sessions"].values()
                    if int(s["server_id"]["pid"]) == pid]
        assert len(sessions) == 1
        session = sessions[0]
        assert session["username"] == "secops-clerk"
        assert session["remote_machine"] == "127.0.0.1"
        assert session["hostname"].startswith("ipv4:127.0.0.1:")
        assert session["uid"] == pwd.getpwnam("secops-clerk").pw_uid
        assert pid in samba_server.session_pids()
        tcons = [t for t in status["tcons"].values() if t["session_id"] == session["session_id"]]
        assert [t["service"] for t in tcons] == ["bau-cu"]
        # the file I/O is done by the child forked for this connection, as root (force user)
        assert parent_of(pid) == samba_server.pid
        assert pid in samba_server.children()
        assert proc_status(pid, "Uid") == ["0", "0", "0", "0"]
        processes = samba_server.status_json("--processes")
        assert set(processes) >= {"sessions"} and "open_files" not in processes
        assert pid in [int(s["server_id"]["pid"]) for s in processes["sessions"].values()]
    smbclient.reset_connection_cache()
    wait_until(lambda: pid not in samba_server.session_pids() and gone(pid),
               "the child ends with its client's connection")


def test_attack_encrypts_every_file_and_reports(
    samba_server: SambaServer, scratch: Path, tmp_path: Path
) -> None:
    originals = {
        "Biên bản kiểm phiếu.docx": docx_bytes(["Biên bản", "Tổ 1: 412 phiếu"]),
        "ket-qua.xlsx": xlsx_bytes([["Ứng cử viên", "Số phiếu"], ["Nguyễn Văn An", 301]]),
        "to-1/danh-sach.csv": "ho_ten,to\nNguyễn Văn An,1\n".encode() * 200,
        "to-1/anh/scan-001.pdf": b"%PDF-1.4\n" + bytes(range(256)) * 64,
        # several SMB writes (the write size is below 3 MiB)
        "lon.bin": random.Random(3).randbytes(3 * 1024 * 1024 + 17),  # noqa: S311 - data
    }
    for rel, data in originals.items():
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_bytes(data)
    top = scratch.relative_to(samba_server.path).as_posix()
    progress = tmp_path / "progress"

    run = run_clerk(samba_server, tmp_path, "attack", "--progress", str(progress), "--dir", top)

    assert run.returncode == 0, run.stderr
    expected = sorted(f"{top}/{rel}" for rel in originals)
    random.Random(11).shuffle(expected)  # noqa: S311 - the clerk's default seed and order
    assert progress.read_text(encoding="utf-8").splitlines() == [
        *(f"done {rel}" for rel in expected), "finished"]
    for rel, data in originals.items():
        now = (scratch / rel).read_bytes()
        assert len(now) == len(data) and now != data, rel
        assert now[:4096] != data[:4096], rel  # from offset 0


def test_stop_ends_smbd_and_every_child(
    tmp_path: Path, smb_client: None, missing_prerequisite: Callable[[str], NoReturn]
) -> None:
    if os.geteuid() != 0:
        missing_prerequisite("smbd needs root")
    server = SambaServer(tmp_path / "office" / "bau-cu", tmp_path / "server", port=free_port())
    try:
        server.start()
        server.start()  # idempotent
        (server.path / "a.txt").write_bytes(b"a")
        f = smbclient.open_file(server.unc("a.txt"), mode="rb", **server.client_kwargs())
        assert f.read() == b"a"
        main = server.pid
        assert main is not None
        served_by = server.session_pids()
        assert served_by and set(served_by) <= set(server.children())
        family = [main, *server.children()]
        with server.outage():  # the file still open: its child is killed with the rest
            assert all(gone(pid) for pid in family), family
            assert not tcp_connectable(server.port)
        with contextlib.suppress(Exception):  # its connection is gone
            f.close()
        smbclient.reset_connection_cache(fail_on_error=False)
        # back up: same port, same password
        with smbclient.open_file(server.unc("a.txt"), mode="rb", **server.client_kwargs()) as f:
            assert f.read() == b"a"
        family = [p for p in [server.pid, *server.children()] if p is not None]
    finally:
        server.stop()
    server.stop()  # idempotent
    assert all(gone(pid) for pid in family), family
