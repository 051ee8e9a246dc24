"""Integrity monitoring without the daemon: probes, classification, rules, the detector,
containment primitives, maintenance and freeze records."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration.fimdata import encrypt, probe, record
from secops.demo.documents import docx_bytes, pdf_bytes, xlsx_bytes
from secops.fim import canary as decoys
from secops.fim import contain
from secops.fim.baseline import Baseline, Record
from secops.fim.detect import Detector, Finding, Observation, Verdict, changed_indicators
from secops.fim.monitor import Monitor
from secops.fim.probe import file_type, similarity
from secops.fim.rules import build_rules, parse_window, violated
from secops.fim.scan import classify, fim_excludes, measure
from secops.fim.scan import run as run_scan
from secops.fim.state import FimState
from secops.layout import CANARY_MARK


def csv_bytes(rows: int, seed: int = 0) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["STT", "Họ và tên", "Ngày sinh", "Nơi thường trú"])
    for i in range(rows):
        w.writerow([i + 1, f"Nguyễn Văn {chr(65 + (i + seed) % 26)}{i}", f"0{i % 28 + 1}/03/19"
                    f"{60 + i % 40}", f"Thôn {i % 7}, xã Tân Kỳ"])
    return buf.getvalue().encode()


def sheet_rows(n: int) -> list[list[str | int]]:
    rows: list[list[str | int]] = [["STT", "Họ và tên"]]
    rows += [[i, f"Trần Thị {i}"] for i in range(n)]
    return rows


DOCS = {
    "docx": docx_bytes(["Biên bản kiểm phiếu tổ bầu cử số 3"] * 40),
    "xlsx": xlsx_bytes(sheet_rows(200)),
    "pdf": pdf_bytes(["Ket qua bau cu"] * 60),
    "csv": csv_bytes(300),
}


# -- probes ----------------------------------------------------------------------------------

def test_types_from_magic_bytes() -> None:
    assert file_type(DOCS["docx"]) == "ooxml"
    assert file_type(DOCS["xlsx"]) == "ooxml"
    assert file_type(DOCS["pdf"]) == "pdf"
    assert file_type(DOCS["csv"]) == "text"
    assert file_type(b"\xff\xd8\xff\xe0" + os.urandom(100)) == "jpeg"
    assert file_type(encrypt(DOCS["csv"])) == "binary"
    assert file_type(base64.b64encode(encrypt(DOCS["csv"]))) == "base64"
    assert file_type(base64.encodebytes(encrypt(DOCS["csv"]))) == "base64"  # 76-char lines
    assert file_type(b"") == "empty"


def test_containers_parse_until_damaged() -> None:
    for name in ("docx", "xlsx", "pdf"):
        assert probe(DOCS[name]).parses, name
        cut = DOCS[name][:-40]
        assert not probe(cut).parses, name  # truncated: the end record is gone
    text = DOCS["csv"]
    assert probe(text).parses
    assert not probe(text + encrypt(b"x" * 20000)).parses  # binary tail on a text file


def test_similarity_survives_edits_and_not_encryption() -> None:
    a = probe(csv_bytes(300)).fp
    edited = csv_bytes(300).replace("Thôn 3".encode(), "Thôn 9".encode(), 5) + \
        "301,Lê Thị Mai,01/01/1990,x\n".encode()
    sim = similarity(a, probe(edited).fp)
    assert sim is not None and sim > 0.6
    enc = similarity(a, probe(encrypt(csv_bytes(300))).fp)
    assert enc is not None and enc < 0.05
    assert similarity(a, probe(b"short").fp) is None


# -- the detector ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DOCS))
def test_encryption_of_each_type_is_an_indicator(name: str) -> None:
    before = record(f"/d/x.{name}", DOCS[name])
    for damage in (encrypt(DOCS[name]), base64.b64encode(encrypt(DOCS[name])),
                   encrypt(DOCS[name][:4096]) + DOCS[name][4096:]):
        found = changed_indicators(before.ftype, before.parses, before.entropy, before.fp,
                                   probe(damage))
        assert found, (name, damage[:20])


@pytest.mark.parametrize("name", sorted(DOCS))
def test_an_ordinary_edit_is_not_an_indicator(name: str) -> None:
    before = record(f"/d/x.{name}", DOCS[name])
    edited = {"docx": docx_bytes(["Biên bản kiểm phiếu tổ bầu cử số 3"] * 41),
              "xlsx": xlsx_bytes(sheet_rows(201)),
              "pdf": pdf_bytes(["Ket qua bau cu"] * 61),
              "csv": DOCS["csv"] + "301,Lê Thị Mai,01/01/1990,x\n".encode()}[name]
    assert changed_indicators(before.ftype, before.parses, before.entropy, before.fp,
                              probe(edited)) == []


def detector_with(files: dict[str, bytes]) -> Detector:
    index = {p: record(p, d, i) for i, (p, d) in enumerate(files.items())}
    return Detector(3.0, 120.0, origin=index.get)


def test_three_encrypted_files_raise_the_alarm_two_do_not() -> None:
    files = {f"/d/{i}.csv": csv_bytes(200, i) for i in range(5)}
    det = detector_with(files)
    index = {p: record(p, d) for p, d in files.items()}
    verdicts = []
    for i, (p, d) in enumerate(files.items()):
        v = det.observe(Observation(100.0 + i, "modified", p, before=index[p],
                                    after=probe(encrypt(d)), pid=4242))
        verdicts.append(v)
    # csv -> random: type_changed + entropy_jump + dissimilar = 2.0 (the per-file cap)
    assert verdicts[0] is None
    assert verdicts[1] is not None and verdicts[1].score >= 3.0
    assert verdicts[1].pids == [4242]
    assert set(verdicts[1].findings[0].indicators) >= {"type_changed", "dissimilar"}


def test_the_window_forgets_old_findings() -> None:
    files = {f"/d/{i}.docx": DOCS["docx"] for i in range(3)}
    det = detector_with(files)
    for i, (p, d) in enumerate(files.items()):
        v = det.observe(Observation(1000.0 * i, "modified", p, before=record(p, d),
                                    after=probe(encrypt(d))))
        assert v is None  # one file per 1000 s: never three within the 120 s window


def test_canary_alarms_at_once() -> None:
    v = Detector().observe(Observation(1.0, "modified", "/d/0000-secops-canary.docx",
                                       canary=True, pid=7))
    assert v is not None and v.canary and v.pids == [7]


def test_a_decoy_written_by_an_attack_is_put_back_in_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / f"0000-{CANARY_MARK}.docx"
    decoys._write(str(path), decoys._content(path.name))
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    ino = path.stat().st_ino
    path.write_bytes(os.urandom(5000))
    assert not decoys.intact(str(path), want)
    assert decoys.rearm(str(path)) == want
    assert decoys.intact(str(path), want) and path.stat().st_ino == ino  # its read mark stays


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "folder"])
def test_putting_a_decoy_back_never_writes_through_another_name(kind: str,
                                                                tmp_path: Path) -> None:
    """The decoy's name made another name of a document (a hard link, a symbolic link): the
    document is never overwritten; nor is anything that is not a file."""
    doc = tmp_path / "danh-sach-cu-tri.csv"
    doc.write_bytes(b"STT,Ho ten\n1,Nguyen Van An\n")
    path = tmp_path / f"0000-{CANARY_MARK}.docx"
    if kind == "hardlink":
        os.link(doc, path)
    elif kind == "symlink":
        path.symlink_to(doc)
    else:
        path.mkdir()
    assert decoys.rearm(str(path)) is None
    assert doc.read_bytes() == b"STT,Ho ten\n1,Nguyen Van An\n"


def test_a_lifted_attack_is_forgotten_and_the_next_starts_afresh() -> None:
    files = {f"/d/{i}.docx": DOCS["docx"] for i in range(3)}
    det = detector_with(files)
    for i, (p, d) in enumerate(list(files.items())[:2]):
        assert det.observe(Observation(1.0 + i, "modified", p, before=record(p, d),
                                       after=probe(encrypt(d)))) is None
    det.forget()
    p, d = list(files.items())[2]
    assert det.observe(Observation(3.0, "modified", p, before=record(p, d),
                                   after=probe(encrypt(d)))) is None
    twin = detector_with(files)  # the twin, not forgotten: the third file is the alarm
    for i, (p, d) in enumerate(files.items()):
        v = twin.observe(Observation(1.0 + i, "modified", p, before=record(p, d),
                                     after=probe(encrypt(d))))
    assert v is not None


@pytest.mark.parametrize("case", ["put_back", "written_again", "other_file", "not_canary"])
def test_only_a_decoy_put_back_and_intact_is_no_new_alarm(case: str, tmp_path: Path) -> None:
    """After a lift, the killed writer's late close of a decoy that was put back is not a
    new alarm; a decoy written again, or any other file, is."""
    path = str(tmp_path / f"0000-{CANARY_MARK}.docx")
    decoys._write(path, decoys._content(os.path.basename(path)))
    me = SimpleNamespace(rearmed={path}, canaries={path: decoys.rearm(path)})
    if case == "written_again":
        Path(path).write_bytes(os.urandom(4096))
    seen = path if case != "other_file" else str(tmp_path / "bien-ban.docx")
    finding = Finding(seen, 1.0, 10.0, ["canary_touched"], [seen], set())
    verdict = Verdict(10.0, [finding], 1.0, case != "not_canary")
    assert Monitor._put_back(me, verdict) is (case == "put_back")  # type: ignore[arg-type]


def test_ransom_note_plus_one_file_alarms() -> None:
    det = detector_with({"/d/a.docx": DOCS["docx"]})
    note = b"Your files are encrypted. Send 0.5 bitcoin to decrypt them."
    assert det.observe(Observation(1.0, "added", "/d/HOW_TO_DECRYPT_FILES.txt",
                                   after=probe(note), text_sample=note)) is None
    v = det.observe(Observation(2.0, "modified", "/d/a.docx", before=record("/d/a.docx",
                                DOCS["docx"]), after=probe(encrypt(DOCS["docx"]))))
    assert v is not None


def test_encrypted_copy_then_delete() -> None:
    files = {f"/d/{i}.xlsx": DOCS["xlsx"] for i in range(2)}
    det = detector_with(files)
    verdicts = []
    for i, (p, d) in enumerate(files.items()):
        verdicts.append(det.observe(Observation(10.0 + i, "added", p + ".enc",
                                                after=probe(encrypt(d)))))
        verdicts.append(det.observe(Observation(10.5 + i, "deleted", p, before=record(p, d))))
    assert verdicts[:2] == [None, None]
    verdict = next(v for v in verdicts if v is not None)
    first = verdict.findings[0]
    assert first.key == "/d/0.xlsx.enc" and "/d/0.xlsx" in first.paths
    assert {"encrypted_copy", "new_then_delete"} <= set(first.indicators)


def test_benign_new_files_and_renames_score_nothing() -> None:
    det = detector_with({"/d/a.pdf": DOCS["pdf"]})
    for i in range(200):
        assert det.observe(Observation(float(i), "added", f"/d/scan/{i}.pdf",
                                       after=probe(DOCS["pdf"]))) is None
        assert det.observe(Observation(float(i), "renamed", f"/d/2026-{i}.pdf",
                                       old_path=f"/d/{i}.pdf")) is None
    zipped = probe(DOCS["docx"])  # a zip archive made in the tree
    assert det.observe(Observation(300.0, "added", "/d/luu-tru.zip", after=zipped)) is None
    assert det.score(301.0) == 0


def test_unknown_extension_counts_outside_maintenance_only() -> None:
    """A rename alone damages nothing; on a file whose content is also suspect it adds."""
    data = DOCS["docx"]
    for maintenance, expected in ((True, 1.0), (False, 1.5)):
        det = Detector()
        obs = Observation(1.0, "renamed", "/d/a.docx.x7f3a", old_path="/d/a.docx",
                          before=record("/d/a.docx", data))
        assert det.observe(obs, maintenance=maintenance) is None
        assert det.score(1.0) == 0
        det.observe(Observation(2.0, "modified", "/d/a.docx.x7f3a",
                                before=record("/d/a.docx.x7f3a", data),
                                after=probe(encrypt(data))), maintenance=maintenance)
        found = det._findings["/d/a.docx"]
        assert ("unknown_extension" in found.indicators) is not maintenance
        assert det.score(2.0) == expected


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(list(range(12))))
def test_any_walk_order_is_caught_within_three_files(order: list[int]) -> None:
    kinds = ["docx", "xlsx", "pdf", "csv"]
    files = {f"/d/{i}.{kinds[i % 4]}": DOCS[kinds[i % 4]] for i in range(12)}
    det = detector_with(files)
    paths = list(files)
    for n, i in enumerate(order, 1):
        p = paths[i]
        v = det.observe(Observation(float(n), "modified", p, before=record(p, files[p]),
                                    after=probe(encrypt(files[p]))))
        if v is not None:
            assert n <= 3
            return
    pytest.fail("never detected")


# -- classification, baseline and scans ------------------------------------------------------

def test_classify_every_kind() -> None:
    a, b, c, d = (record(f"/d/{n}", DOCS["csv"] + n.encode(), i)
                  for i, n in enumerate("abcd"))
    old = {r.path: r for r in (a, b, c, d)}
    moved = Record("/d/sub/c", *[getattr(c, f) for f in Record.__dataclass_fields__][1:])
    b2 = record("/d/b", DOCS["csv"] + b"changed", 1)
    d2 = Record(d.path, d.size, d.mtime_ns, 99, d.inode, 0o100600, 0, 0, d.sha256, d.ftype,
                d.parses, d.entropy, d.fp)
    new = {"/d/b": b2, moved.path: moved, "/d/d": d2, "/d/e": record("/d/e", b"new", 9)}
    got = {(ch.kind, ch.path) for ch in classify(old, new)}
    assert got == {("modified", "/d/b"), ("renamed", "/d/sub/c"), ("meta", "/d/d"),
                   ("added", "/d/e"), ("deleted", "/d/a")}


def test_scan_short_circuits_and_verify_finds_restored_timestamps(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    for i in range(20):
        (root / "sub" / f"{i}.csv").write_bytes(csv_bytes(50, i))
    (root / "link").symlink_to("/etc/passwd")  # never followed out of the tree
    base = Baseline(tmp_path / "state.db")
    ex = fim_excludes([], str(tmp_path / "state"))
    assert run_scan([str(root)], ex, base, "baseline").files == 20
    assert run_scan([str(root)], ex, base, "scan").hashed == 0
    victim = root / "sub" / "3.csv"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[10] ^= 1
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    rep = run_scan([str(root)], ex, base, "verify")
    assert [(c.kind, c.path, c.stealth) for c in rep.changes] == [("modified", str(victim), True)]
    assert run_scan([str(root)], ex, base, "verify").changes == []  # twin: now recorded
    base.close()


def test_a_scan_reads_only_stat_keys_yet_reports_every_kind_of_change(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    names = ["a.csv", "b.csv", "c.csv", "d.csv", "e.csv", os.fsdecode(b"f\xff.csv")]
    for i, name in enumerate(names):
        (root / name).write_bytes(csv_bytes(40, i))
    base = Baseline(tmp_path / "state.db")
    ex = fim_excludes([], str(tmp_path / "state"))
    run_scan([str(root)], ex, base, "baseline")
    assert len(base.stat_keys()) == 6 and run_scan([str(root)], ex, base, "scan").changes == []
    (root / "a.csv").write_bytes(csv_bytes(41, 99))
    (root / "b.csv").unlink()
    (root / "c.csv").rename(root / "c2.csv")
    (root / "d.csv").chmod(0o600)
    (root / "g.csv").write_bytes(csv_bytes(5, 7))
    odd = root / os.fsdecode(b"f\xff.csv")
    odd.write_bytes(odd.read_bytes() + b"1,2\n")
    rep = run_scan([str(root)], ex, base, "scan")
    got = {(c.kind, os.path.basename(c.path)) for c in rep.changes}
    assert got == {("modified", "a.csv"), ("deleted", "b.csv"), ("renamed", "c2.csv"),
                   ("meta", "d.csv"), ("added", "g.csv"), ("modified", odd.name)}
    assert rep.hashed == 5  # not the untouched e.csv
    again = run_scan([str(root)], ex, base, "scan")  # twin: all of it is recorded now
    assert (again.hashed, again.changes, again.files) == (0, [], 6)
    assert set(base.stat_keys()) == {str(p) for p in root.iterdir()}
    base.close()


@pytest.mark.parametrize(("processes", "cpus"), [(False, 2), (True, 2), (True, 1)])
def test_measuring_a_stream_of_paths_keeps_its_order_on_every_core(
        tmp_path: Path, processes: bool, cpus: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from secops.fim.scan import FORK_FROM, measure_many

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)

    paths = []
    for i in range(FORK_FROM + 300):  # more than one fork's worth, fed while it is consumed
        f = tmp_path / f"{i:04}.csv"
        f.write_bytes(csv_bytes(3, i))
        paths.append(str(f))
    paths[7] = str(tmp_path / "gone.csv")  # vanished
    fed: list[str] = []

    def stream() -> Iterator[str]:
        for p in paths:
            fed.append(p)
            yield p

    got = list(measure_many(stream(), processes=processes))
    assert [p for p, _ in got] == paths == fed
    assert got[7][1] is None
    for path, rec in got[:7] + got[8:]:
        assert isinstance(rec, Record) and rec.path == path
        assert rec.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_unreadable_and_vanishing_files_are_not_fatal(tmp_path: Path) -> None:
    assert measure(str(tmp_path / "gone")) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert measure(str(fifo)) is None
    big = tmp_path / "big.bin"
    with big.open("wb") as f:  # hashed streaming
        f.truncate(64 << 20)
    rec = measure(str(big))
    assert rec is not None and rec.size == 64 << 20


# -- rules and maintenance -------------------------------------------------------------------

def test_windows() -> None:
    w = parse_window("mon-fri 07:30-17:30")
    assert w.contains(datetime(2026, 3, 2, 8, 0))       # a Monday
    assert not w.contains(datetime(2026, 3, 1, 8, 0))   # a Sunday
    assert not w.contains(datetime(2026, 3, 2, 18, 0))
    p = parse_window("2026-03-01 08:00/2026-03-10 17:00")
    assert p.contains(datetime(2026, 3, 5, 23, 0)) and not p.contains(datetime(2026, 3, 11))
    assert parse_window("sat-mon 08:00-09:00").contains(datetime(2026, 3, 1, 8, 30))
    for bad in ("mon-fri 7:30", "daily 10:00-09:00", "2026-03-10 08:00/2026-03-01 08:00",
                "weekdays"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_rules_match_relative_and_absolute_paths() -> None:
    rules = build_rules([(["danh-sach-cu-tri/"], ["mon-fri 07:30-17:30"]),
                         (["/srv/x/*.csv"], [])])
    roots = ["/srv/bau-cu"]
    sunday = datetime(2026, 3, 1, 9, 0)
    monday = datetime(2026, 3, 2, 9, 0)
    voter = "/srv/bau-cu/danh-sach-cu-tri/thon-1/a.csv"
    assert violated(rules, voter, roots, sunday, False) is not None
    assert violated(rules, voter, roots, monday, False) is None
    assert violated(rules, voter, roots, sunday, True) is None  # maintenance
    assert violated(rules, "/srv/bau-cu/scan/a.jpg", roots, sunday, False) is None
    assert violated(rules, "/srv/x/b.csv", roots, monday, False) is not None


def test_maintenance_and_freeze_records(tmp_path: Path) -> None:
    s = FimState(tmp_path / "state.db")
    assert s.maintenance() is None
    m = s.start_maintenance(30, "cập nhật", "tester")
    assert s.maintenance() == m
    assert s.maintenance(time.time() + 31 * 60) is None
    assert s.stop_maintenance() == m and s.maintenance() is None
    fid = s.record_freeze("test", [{"pid": 5, "stopped": True}])
    s.add_frozen_paths(fid, ["/a", "/b"])
    s.add_processes(fid, [{"pid": 5}, {"pid": 6, "stopped": False}])
    f = s.active_freeze()
    assert f is not None and f.paths == 2 and [p["pid"] for p in f.processes] == [5, 6]
    s.lift(fid, "kill")
    assert s.active_freeze() is None
    s.close()


# -- containment primitives (real: SIGSTOP, the immutable attribute) -------------------------

def test_stop_and_kill_a_writer() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        got = contain.stop_processes([child.pid, os.getpid(), 1])
        assert [p["pid"] for p in got] == [child.pid] and got[0]["stopped"]
        time.sleep(0.1)
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "T"
        assert contain.resume_processes(got, kill=True) == [{"pid": child.pid,
                                                             "result": "killed"}]
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_freeze_makes_root_unable_to_write_and_thaw_reverts_exactly(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.csv").write_text("a")
    already = root / "already.txt"
    already.write_text("x")
    contain.set_immutable(str(already), True)
    try:
        result = contain.freeze_trees([str(root)])
        if result.unsupported:
            pytest.fail("the immutable attribute is not supported on this filesystem")
        assert str(already) not in result.paths
        assert set(result.paths) == {str(root), str(root / "sub"), str(root / "sub" / "a.csv")}
        with pytest.raises(PermissionError):
            (root / "sub" / "a.csv").write_text("b")
        with pytest.raises(PermissionError):
            (root / "sub" / "new.csv").write_text("b")
        with pytest.raises(PermissionError):
            (root / "sub" / "a.csv").rename(root / "sub" / "a.locked")
        assert contain.thaw(result.paths) == []
        (root / "sub" / "a.csv").write_text("b")  # the twin: writable again
        assert contain.is_immutable(str(already))  # what was immutable before stays so
    finally:
        contain.set_immutable(str(already), False)
        contain.thaw([str(p) for p in root.rglob("*")] + [str(root)])
