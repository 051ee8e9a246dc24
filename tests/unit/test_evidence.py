"""Evidence collection against the real /proc and real files: RFC 3227 order, the items'
content, and the chain of custody (each tampering caught, the untouched twin clean)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minimal_config import MINIMAL_TOML

from secops.config.loader import load_config
from secops.config.schema import Config
from secops.playbooks.evidence import (
    UTMP,
    Item,
    Limits,
    collect,
    custody_head,
    decode_address,
    parse_stat,
    parse_utmp,
    verify_custody,
)

CONFIG = MINIMAL_TOML + """\
[logs]
seal = ["var/auth.log", "var/absent.log"]
"""
ORDER = ["processes", "network", "users", "open_files", "file_hashes"]
WRITER = ("import sys; f = open(sys.argv[1], 'w'); f.write('x'); f.flush(); "
          "print('ready', flush=True); sys.stdin.read()")


def make_config(root: Path) -> Config:
    (root / "data" / "danh-sach").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "auth.log").write_text("Mar 15 07:00:01 tanky sshd[1]: Accepted\n")
    (root / "state" / "audit").mkdir(parents=True)
    (root / "state" / "audit" / "audit.jsonl").write_text('{"seq":0}\n')
    (root / "secops.toml").write_text(CONFIG, encoding="utf-8")
    return load_config(root / "secops.toml")


@dataclass
class Run:
    root: Path
    folder: Path
    items: list[Item]
    suspect: int
    writer: int
    written: Path
    port: int
    paths: dict[str, Path]

    def doc(self, name: str) -> Any:
        return json.loads((self.folder / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One collection while a suspect runs, a writer holds a watched file open for writing
    and this process listens on a loopback port."""
    root = tmp_path_factory.mktemp("evidence")
    cfg = make_config(root)
    voters = root / "data" / "danh-sach" / "thon-1.csv"
    voters.write_text("STT,Họ và tên\n1,Lê Văn An\n", encoding="utf-8")
    link = root / "data" / "link.csv"
    link.symlink_to(voters)
    paths = {"file": voters, "link": link, "missing": root / "data" / "gone.csv"}
    written = root / "data" / "bien-ban.txt"
    suspect = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(written)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        folder = root / "incidents" / "INC-tan-ky-20260315-1"
        items = collect(cfg, folder, paths=[str(p) for p in paths.values()],
                        pids=[suspect.pid], incident="INC-tan-ky-20260315-1")
        yield Run(root, folder, items, suspect.pid, writer.pid, written,
                  listener.getsockname()[1], paths)
    finally:
        listener.close()
        suspect.kill()
        writer.kill()
        suspect.wait()
        writer.wait()


def custody(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "custody.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_items_in_order_of_volatility_hashed_and_private(run: Run) -> None:
    records = custody(run.folder)
    kinds = [r["kind"] for r in records]
    assert kinds[:5] == ORDER
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert [r["name"] for r in records] == [i.name for i in run.items]
    logs = [r["name"] for r in records if r["kind"] == "log"]
    assert logs == ["logs/auth.log", "logs/audit.jsonl"]  # absent.log: not there, skipped
    if shutil.which("journalctl"):
        assert kinds[-1] == "journal" and records[-1]["name"] == "logs/journal.txt"
    assert stat.S_IMODE(run.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((run.folder / "logs").stat().st_mode) == 0o700
    for r in records:
        data = (run.folder / r["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"] and len(data) == r["size"]
        assert stat.S_IMODE((run.folder / r["name"]).stat().st_mode) == 0o600
        assert r["incident"] == "INC-tan-ky-20260315-1"
        assert r["collector"]["pid"] == os.getpid()
        assert r["collector"]["program"].startswith("secops ")
        assert r["collected_at"].endswith("Z")
    assert records[0]["prev"] == "0" * 64
    assert (run.folder / "logs" / "auth.log").read_bytes() == \
        (run.root / "var" / "auth.log").read_bytes()


def test_the_suspect_process_is_marked(run: Run) -> None:
    doc = run.doc("processes.json")
    procs = {p["pid"]: p for p in doc["processes"]}
    assert procs[run.suspect]["suspect"] is True
    assert procs[run.suspect]["cmdline"][:2] == [sys.executable, "-c"]
    assert procs[run.suspect]["ppid"] == os.getpid()
    assert procs[run.suspect]["start_time"].endswith("Z")
    assert procs[os.getpid()]["suspect"] is False
    assert procs[os.getpid()]["exe"] is not None and doc["suspects_not_found"] == []


def test_a_writer_under_a_watched_folder_is_in_open_files(run: Run) -> None:
    found = [f for f in run.doc("open_files.json")["open_files"] if f["pid"] == run.writer]
    assert [(f["path"], f["mode"]) for f in found] == [(str(run.written), "w")]


def test_the_listening_socket_names_its_process(run: Run) -> None:
    sockets = run.doc("network.json")["sockets"]
    mine = [s for s in sockets if s["proto"] == "tcp" and s["local_port"] == run.port]
    assert len(mine) == 1
    assert mine[0]["local_address"] == "127.0.0.1" and mine[0]["state"] == "LISTEN"
    assert os.getpid() in mine[0]["pids"] and mine[0]["uid"] == os.geteuid()


def test_file_hashes_a_file_not_a_symlink_and_a_missing_one(run: Run) -> None:
    files = {f["path"]: f for f in run.doc("file_hashes.json")["files"]}
    voters = files[str(run.paths["file"])]
    data = run.paths["file"].read_bytes()
    assert voters["sha256"] == hashlib.sha256(data).hexdigest() and voters["size"] == len(data)
    link = files[str(run.paths["link"])]
    assert link["type"] == "symlink" and "sha256" not in link
    assert link["target"] == str(run.paths["file"])
    assert files[str(run.paths["missing"])] == {"path": str(run.paths["missing"]),
                                                "missing": True}


def test_users_is_a_list_even_without_utmp(run: Run) -> None:
    assert isinstance(run.doc("users.json")["users"], list)


def test_dry_run_plans_and_creates_nothing(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    folder = tmp_path / "incidents" / "INC-1"
    plan = collect(cfg, folder, paths=[str(tmp_path / "data" / "x")], dry_run=True)
    assert [p["kind"] for p in plan][:7] == [*ORDER, "log", "log"]
    assert all(set(p) == {"kind", "description", "source"} for p in plan)
    assert not (tmp_path / "incidents").exists()


@pytest.fixture
def twin(run: Run, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(run.folder, folder)
    return folder


def test_untouched_evidence_verifies(twin: Path) -> None:
    assert verify_custody(twin) == []
    assert verify_custody(twin, head=custody_head(twin)) == []


def test_a_changed_byte_names_the_item(twin: Path) -> None:
    item = twin / "network.json"
    data = bytearray(item.read_bytes())
    data[10] ^= 1
    item.write_bytes(bytes(data))
    problems = verify_custody(twin)
    assert len(problems) == 1 and "network.json" in problems[0] and "changed" in problems[0]


def test_an_edited_custody_line_breaks_the_chain(twin: Path) -> None:
    path = twin / "custody.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[0])
    record["description"] = "nothing to see"
    lines[0] = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    problems = verify_custody(twin)
    assert len(problems) == 1 and "line 2" in problems[0] and "chain is broken" in problems[0]


def test_a_rewritten_last_line_is_caught_with_the_head(twin: Path) -> None:
    head = custody_head(twin)
    path = twin / "custody.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[-1])
    record["collected_at"] = "2026-01-01T00:00:00Z"
    lines[-1] = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert verify_custody(twin) == []  # the chain alone cannot see its own end
    problems = verify_custody(twin, head=head)
    assert len(problems) == 1 and "recorded head" in problems[0]


def test_a_deleted_item_is_missing(twin: Path) -> None:
    (twin / "logs" / "auth.log").unlink()
    problems = verify_custody(twin)
    assert len(problems) == 1 and "auth.log" in problems[0] and "missing" in problems[0]


def test_a_removed_custody_line_breaks_the_chain(twin: Path) -> None:
    path = twin / "custody.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")
    problems = verify_custody(twin)
    assert any("chain is broken" in p for p in problems)
    assert any("seq 3, expected 2" in p for p in problems)


def test_a_second_run_continues_the_chain_and_overwrites_nothing(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    folder = tmp_path / "ev"
    first = collect(cfg, folder)
    second = collect(cfg, folder)
    assert second[0].seq == len(first) + 1 and second[0].name == "processes-2.json"
    assert verify_custody(folder) == []


def test_an_unreadable_source_is_an_item_with_an_error(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    auth = tmp_path / "var" / "auth.log"
    auth.unlink()
    auth.symlink_to(tmp_path / "secops.toml")  # a log replaced by a symlink: not followed
    items = collect(cfg, tmp_path / "ev")
    bad = next(i for i in items if i.source == str(auth))
    assert bad.name == "logs/auth.log.error.json" and bad.error is not None
    assert "symlink, not followed" in bad.error
    assert json.loads((tmp_path / "ev" / bad.name).read_text())["error"] == bad.error
    assert not (tmp_path / "ev" / "logs" / "auth.log").exists()
    assert verify_custody(tmp_path / "ev") == []


def test_a_large_log_is_truncated_and_says_so(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    (tmp_path / "var" / "auth.log").write_bytes(b"x" * 5000)
    items = collect(cfg, tmp_path / "ev", limits=Limits(log_bytes=1000))
    log = next(i for i in items if i.name == "logs/auth.log")
    assert log.truncated and log.size == 1000
    assert json.loads((tmp_path / "ev" / "custody.jsonl").read_text().splitlines()[
        log.seq - 1])["truncated"] is True


def test_proc_net_addresses_decode() -> None:
    word = struct.unpack("=I", socket.inet_aton("127.0.0.1"))[0]
    assert decode_address(f"{word:08X}:1F90") == ("127.0.0.1", 8080)
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    words = "".join(f"{w:08X}" for w in struct.unpack("=4I", v6))
    assert decode_address(f"{words}:0016") == ("2001:db8::1", 22)


def test_stat_with_an_awkward_command_name() -> None:
    raw = b"42 (a) b (c) S 1 42 42 0 -1 4194560 " + b"0 " * 12 + b"777 0 0\n"
    assert parse_stat(raw) == ("a) b (c", "S", 1, 777)


def test_utmp_records_of_logged_in_users() -> None:
    def record(ut_type: int, user: bytes) -> bytes:
        addr = struct.unpack("=4i", socket.inet_aton("10.0.0.5") + b"\0" * 12)
        return UTMP.pack(ut_type, 4242, b"pts/0", b"ts/0", user, b"10.0.0.5", 0, 0, 7,
                         1773558000, 0, *addr, b"")

    data = record(2, b"reboot") + record(7, "cán-bộ".encode()) + b"\0" * 10
    assert parse_utmp(data) == [{
        "type": 7, "pid": 4242, "line": "pts/0", "id": "ts/0", "user": "cán-bộ",
        "host": "10.0.0.5", "session": 7, "time": "2026-03-15T07:00:00Z",
        "address": "10.0.0.5"}]


UNIT_CAPS = "-all,+dac_read_search,+dac_override,+fowner,+chown,+linux_immutable,+kill,+sys_admin"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="dropping capabilities needs root and setpriv")
def test_without_cap_sys_ptrace_unreadable_processes_are_named() -> None:
    # As under systemd/secops.service: root, but without CAP_SYS_PTRACE. This process
    # (root, all capabilities) can then be listed but its descriptors not read.
    code = ("import json; from secops.playbooks.evidence import network_doc, processes_doc; "
            "print(json.dumps([network_doc()['fd_unreadable'], processes_doc([])]))")
    out = subprocess.run(["setpriv", "--bounding-set", UNIT_CAPS, "--inh-caps", UNIT_CAPS,
                          "--ambient-caps", UNIT_CAPS, sys.executable, "-c", code],
                         check=True, capture_output=True, timeout=30).stdout
    unreadable, procs = json.loads(out)
    assert os.getpid() in unreadable
    me = next(p for p in procs["processes"] if p["pid"] == os.getpid())
    assert me["exe"] is None and me["cmdline"] and me["uid"] == 0
