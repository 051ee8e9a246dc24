"""Real documents, the test corpus, the ransomware simulator and the benign workloads."""

from __future__ import annotations

import base64
import csv
import io
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from xml.etree import ElementTree

import pytest
from PIL import Image

from integration import benign, ransim
from integration.corpus import make_corpus, sha_tree
from secops.demo.documents import (
    column_letter,
    docx_bytes,
    docx_paragraphs,
    pdf_bytes,
    pdf_jpeg_bytes,
    xlsx_bytes,
    xlsx_rows,
)

RANSIM = Path(ransim.__file__)
VIETNAMESE = ["BIÊN BẢN KIỂM PHIẾU", "Đặng Thị Hà <thư ký> & 'tổ trưởng' \"x\"", "", "Số 1\x01"]
MAGIC = {".docx": b"PK\x03\x04", ".xlsx": b"PK\x03\x04", ".pdf": b"%PDF-",
         ".jpg": b"\xff\xd8\xff", ".csv": b"STT,"}


def _assert_ooxml(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names[0] == "[Content_Types].xml"
        assert zf.testzip() is None
        for member in names:
            ElementTree.fromstring(zf.read(member))  # noqa: S314 - our own output
        return names


def _assert_pdf(data: bytes) -> None:
    assert data.startswith(b"%PDF-1.4\n")
    assert data.endswith(b"%%EOF\n")
    xref = int(re.findall(rb"startxref\n(\d+)\n%%EOF\n$", data)[0])
    table = data[xref:].split(b"trailer")[0].decode("ascii").splitlines()
    assert table[0] == "xref"
    first, count = map(int, table[1].split())
    assert (first, table[2]) == (0, "0000000000 65535 f ")
    entries = table[3:]
    assert len(entries) == count - 1
    for number, entry in enumerate(entries, start=1):
        assert len(entry) == 19 and entry.endswith(" 00000 n ")  # 20 bytes with the newline
        assert data[int(entry[:10]):].startswith(f"{number} 0 obj\n".encode())
    assert f"/Size {count}".encode() in data


def _pdf_streams(data: bytes) -> list[bytes]:
    return re.findall(rb"/Filter /FlateDecode >>\nstream\n(.*?)\nendstream", data, re.S)


# ---------------------------------------------------------------- documents


def test_docx_is_a_valid_package_with_the_text() -> None:
    data = docx_bytes(VIETNAMESE)
    names = _assert_ooxml(data)
    assert names[:3] == ["[Content_Types].xml", "_rels/.rels", "word/document.xml"]
    assert docx_paragraphs(data) == ["BIÊN BẢN KIỂM PHIẾU", VIETNAMESE[1], "", "Số 1"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "BIÊN BẢN".encode() in zf.read("docProps/core.xml")
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())


def test_xlsx_is_a_valid_package_with_the_cells() -> None:
    rows: list[list[str | int]] = [["STT", "Họ và tên"], [1, "Nguyễn <Văn> & An"],
                                   [2, *["x"] * 30]]
    data = xlsx_bytes(rows)
    names = _assert_ooxml(data)
    assert set(names) == {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
                          "xl/_rels/workbook.xml.rels", "xl/worksheets/sheet1.xml"}
    assert xlsx_rows(data) == rows
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    assert 't="inlineStr"' in sheet and 'r="AE3"' in sheet


@pytest.mark.parametrize(("index", "letters"), [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"),
                                                (702, "AAA")])
def test_column_letter(index: int, letters: str) -> None:
    assert column_letter(index) == letters


def test_pdf_xref_offsets_point_at_their_objects() -> None:
    data = pdf_bytes(["Biên bản (kiểm) phiếu \\ số 1", *[f"dòng {i}" for i in range(120)]])
    _assert_pdf(data)
    assert b"/Count 3" in data
    text = b"".join(zlib.decompress(s) for s in _pdf_streams(data))
    assert b"(Bien ban \\(kiem\\) phieu \\\\ so 1) Tj" in text
    assert b"(dong 119) Tj" in text


def test_pdf_uncompressed_and_empty() -> None:
    plain = pdf_bytes(["Tổ bầu cử"], compress=False)
    _assert_pdf(plain)
    assert b"FlateDecode" not in plain and b"(To bau cu) Tj" in plain
    _assert_pdf(pdf_bytes([]))


def test_pdf_of_a_scan_embeds_the_jpeg() -> None:
    out = io.BytesIO()
    Image.new("L", (120, 170), 240).save(out, "JPEG")
    data = pdf_jpeg_bytes(out.getvalue(), 120, 170, gray=True)
    _assert_pdf(data)
    assert out.getvalue() in data and b"/DCTDecode" in data


def test_writers_are_deterministic() -> None:
    assert docx_bytes(VIETNAMESE) == docx_bytes(list(VIETNAMESE))
    assert xlsx_bytes([["a", 1]]) == xlsx_bytes([["a", 1]])
    assert pdf_bytes(VIETNAMESE) == pdf_bytes(VIETNAMESE)
    assert docx_bytes(["a"]) != docx_bytes(["b"])


# ---------------------------------------------------------------- corpus


def test_corpus_has_every_kind_of_real_file(tmp_path: Path) -> None:
    hashes = make_corpus(tmp_path, n=40, seed=7)
    assert len(hashes) == 40
    assert sha_tree(tmp_path) == hashes
    by_kind: dict[str, int] = {}
    for rel in hashes:
        path = tmp_path / rel
        by_kind[path.suffix] = by_kind.get(path.suffix, 0) + 1
        assert path.read_bytes().startswith(MAGIC[path.suffix]), rel
        if path.suffix == ".jpg":
            with Image.open(path) as img:
                assert img.format == "JPEG"
                img.load()
            assert 20_000 <= path.stat().st_size <= 210_000
        elif path.suffix in {".docx", ".xlsx"}:
            _assert_ooxml(path.read_bytes())
        elif path.suffix == ".pdf":
            _assert_pdf(path.read_bytes())
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
            assert len(rows) > 50 and 5_000 <= path.stat().st_size <= 60_000
    assert by_kind == {".csv": 10, ".docx": 10, ".xlsx": 6, ".pdf": 6, ".jpg": 8}
    assert {rel.split("/")[0] for rel in hashes} == {
        "danh-sach-cu-tri", "ho-so-ung-vien", "bien-ban", "ket-qua", "scan"}


def test_corpus_is_deterministic_by_seed(tmp_path: Path) -> None:
    first = make_corpus(tmp_path / "a", n=12, seed=3)
    assert make_corpus(tmp_path / "b", n=12, seed=3) == first
    assert make_corpus(tmp_path / "c", n=12, seed=4) != first


def test_sha_tree_skips_canaries_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / "sub" / ".secops-canary-1.docx").write_text("c")
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "a.txt")
    assert list(sha_tree(tmp_path)) == ["sub/a.txt"]


# ---------------------------------------------------------------- ransim


def _run_ransim(variant: str, folder: Path, progress: Path, *extra: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(RANSIM), "--variant", variant, "--dir", str(folder),
         "--delay", "0", "--seed", "5", "--progress", str(progress), *extra],
        capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return progress.read_text().splitlines()


WHOLE_TREE = [v for v in ransim.VARIANTS if v not in ("intermittent", "wiper", "rm-rf")]


@pytest.mark.parametrize("variant", WHOLE_TREE)
def test_ransim_damages_every_file(tmp_path: Path, variant: str) -> None:
    data = tmp_path / "data"
    before = make_corpus(data, n=20)
    stats = {rel: (data / rel).stat() for rel in before}
    lines = _run_ransim(variant, data, tmp_path / "progress")
    assert lines[-1] == "finished"
    assert sorted(lines[:-1]) == sorted(f"done {rel}" for rel in before)
    assert [line.split()[1] for line in lines[:-1]] != sorted(before)  # shuffled
    after = sha_tree(data)
    assert all(after.get(rel) != sha for rel, sha in before.items())
    notes = [rel for rel in after if rel.endswith(ransim.NOTE_NAME)]
    others = set(after) - set(before) - set(notes)
    if variant == "inplace":
        assert others == {f"{rel}.locked" for rel in before}
        assert len(notes) == len({str(Path(rel).parent) for rel in before})
        assert "bitcoin" in (data / notes[0]).read_text()
    else:
        assert not notes
    if variant == "new-then-delete":
        assert others == {f"{rel}.enc" for rel in before}
    if variant == "rename-ext":
        assert len(others) == len(before)
        assert all(re.fullmatch(r"[a-z0-9]{5}", Path(rel).suffix[1:]) for rel in others)
    if variant in {"partial", "slow", "keep-ext", "base64"}:
        assert set(after) == set(before)
    if variant == "partial":
        for rel, st in stats.items():
            raw = (data / rel).read_bytes()
            assert len(raw) == st.st_size
    if variant == "keep-ext":
        assert all((data / rel).stat().st_mtime_ns == st.st_mtime_ns
                   for rel, st in stats.items())
    if variant == "base64":
        for rel, st in stats.items():
            raw = (data / rel).read_bytes()
            assert len(raw) == 4 * ((st.st_size + 2) // 3)
            base64.b64decode(raw, validate=True)


def test_ransim_intermittent_keeps_head_and_tail_of_large_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = make_corpus(data, n=30)
    sizes = {rel: (data / rel).stat().st_size for rel in before}
    originals = {rel: (data / rel).read_bytes() for rel in before}
    _run_ransim("intermittent", data, tmp_path / "progress")
    large = [rel for rel, n in sizes.items() if n > ransim.INTERMITTENT_MIN]
    assert large, "the corpus has no file over 72 KB: this test proves nothing"
    after = sha_tree(data)
    for rel, sha in before.items():
        raw = (data / rel).read_bytes()
        assert len(raw) == sizes[rel]
        if rel in large:
            assert after[rel] != sha
            assert raw[:4096] == originals[rel][:4096] and raw[-65536:] == originals[rel][-65536:]
        else:
            assert after[rel] == sha


def test_ransim_wiper_and_rm_rf(tmp_path: Path) -> None:
    for variant in ("wiper", "rm-rf"):
        data = tmp_path / variant
        before = make_corpus(data, n=20)
        _run_ransim(variant, data, tmp_path / f"{variant}.progress")
        left = sha_tree(data)
        if variant == "wiper":
            assert set(left) == {r for r in before if not r.endswith((".pdf", ".csv"))}
            assert all(left[r] == before[r] for r in left)
        else:
            assert left == {} and data.is_dir()


def test_ransim_partial_keeps_the_tail(tmp_path: Path) -> None:
    original = os.urandom(3 * ransim.PARTIAL_BYTES)
    (tmp_path / "a.bin").write_bytes(original)
    assert ransim.attack(tmp_path, "partial") == (1, 0)
    damaged = (tmp_path / "a.bin").read_bytes()
    assert damaged[ransim.PARTIAL_BYTES:] == original[ransim.PARTIAL_BYTES:]
    assert damaged[:ransim.PARTIAL_BYTES] != original[:ransim.PARTIAL_BYTES]


def test_ransim_reports_a_failure_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("ballots")
    progress = tmp_path.parent / f"{tmp_path.name}.progress"
    files = [tmp_path / "gone.txt", tmp_path / "b.txt"]
    assert ransim.attack(tmp_path, "inplace", progress=progress, files=files) == (1, 1)
    assert progress.read_text().splitlines() == ["failed gone.txt ENOENT", "done b.txt",
                                                 "finished"]


def test_ransim_goes_on_past_an_immutable_file(
    tmp_path: Path, missing_prerequisite: Callable[[str], NoReturn]
) -> None:
    data = tmp_path / "data"
    before = make_corpus(data, n=8)
    locked = data / sorted(before)[0]
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(locked)], capture_output=True,
                                        timeout=10, check=False).returncode != 0:
        missing_prerequisite("chattr +i (root, a file system with the immutable flag)")
    try:
        lines = _run_ransim("inplace", data, tmp_path / "progress")
    finally:
        subprocess.run([str(chattr), "-i", str(locked)], timeout=10, check=True)
    assert f"failed {sorted(before)[0]} EPERM" in lines
    assert sum(line.startswith("done ") for line in lines) == 7 and lines[-1] == "finished"
    assert sha_tree(data)[sorted(before)[0]] == before[sorted(before)[0]]


def test_ransim_limit_and_own_files(tmp_path: Path) -> None:
    make_corpus(tmp_path, n=10)
    progress = tmp_path / "progress.log"  # inside the tree: ransim spares its own log
    lines = _run_ransim("keep-ext", tmp_path, progress, "--limit", "4")
    assert len(lines) == 5 and lines[-1] == "finished"
    assert all(line.startswith("done ") for line in lines[:-1])
    assert ransim.DEFAULT_DELAY["slow"] == 2.0


def test_ransim_base64_output_is_text_of_about_six_bits_per_byte(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"STT,Ho ten,Thon 1\n" * 500)
    ransim.attack(tmp_path, "base64")
    raw = (tmp_path / "a.csv").read_bytes()
    assert set(raw) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    counts = Counter(raw)
    entropy = -sum(c / len(raw) * math.log2(c / len(raw)) for c in counts.values())
    assert 5.9 < entropy <= 6.0


# ---------------------------------------------------------------- benign


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    make_corpus(tmp_path / "data", n=20)
    return tmp_path / "data"


def test_office_save_keeps_a_valid_document(docs: Path) -> None:
    docx = next(docs.rglob("*.docx"))
    xlsx = next(docs.rglob("*.xlsx"))
    docx.chmod(0o640)
    before = docx_paragraphs(docx.read_bytes())
    benign.office_save(docx, "Bổ sung: đã niêm yết\nDòng hai")
    assert docx_paragraphs(docx.read_bytes()) == [*before, "Bổ sung: đã niêm yết", "Dòng hai"]
    assert docx.stat().st_mode & 0o777 == 0o640
    benign.office_save(xlsx, "Ghi chú")
    assert xlsx_rows(xlsx.read_bytes())[-1] == ["Ghi chú"]
    _assert_ooxml(xlsx.read_bytes())
    assert not [p for p in docs.rglob("*") if p.name.startswith(".~lock") or p.suffix == ".tmp"]
    with pytest.raises(ValueError, match="not kiem-phieu"):
        benign.office_save(next(docs.rglob("*.pdf")), "x")


def test_edit_csv_appends_numbered_rows(docs: Path) -> None:
    path = next(docs.rglob("*.csv"))
    before = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    benign.edit_csv(path, rows=3)
    after = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert after[:len(before)] == before
    assert [row[0] for row in after[len(before):]] == [str(len(before) + i) for i in range(3)]
    assert all(len(row) == len(before[0]) for row in after)


def test_import_scans_writes_real_jpegs_and_pdfs(tmp_path: Path) -> None:
    paths = benign.import_scans(tmp_path / "nhap-scan", n=8, seed=2)
    assert len(paths) == 8 and {p.suffix for p in paths} == {".jpg", ".pdf"}
    for path in paths:
        if path.suffix == ".jpg":
            with Image.open(path) as img:
                img.verify()
        else:
            _assert_pdf(path.read_bytes())
        assert path.stat().st_size > 20_000
    assert benign.import_scans(tmp_path / "again", n=8, seed=2)[0].read_bytes() == \
        paths[0].read_bytes()


def test_make_zip_archives_a_few_files(docs: Path) -> None:
    archive = docs / "luu-tru" / "ban-sao.zip"
    benign.make_zip(docs, archive)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert 1 < len(names) <= 8
        assert zf.read(names[0]) == (docs / names[0]).read_bytes()


def test_bulk_rename_adds_a_prefix(docs: Path) -> None:
    (docs / ".secops-canary.docx").write_text("decoy")
    before = sha_tree(docs)
    renamed = benign.bulk_rename(docs, n=5)
    assert len(renamed) == 5 and all(p.name.startswith("2026-") for p in renamed)
    after = sha_tree(docs)
    assert sorted(after.values()) == sorted(before.values())
    assert (docs / ".secops-canary.docx").exists()


@pytest.mark.requires_gpg
def test_gpg_encrypt_one_keeps_the_original(tmp_path: Path) -> None:
    path = tmp_path / "ket-qua.csv"
    path.write_text("STT,Họ và tên\n1,Lê Thị Mai\n", encoding="utf-8")
    home = tmp_path / "gnupg"
    out = benign.gpg_encrypt_one(path, home)
    assert out == tmp_path / "ket-qua.csv.gpg" and path.exists()
    assert home.stat().st_mode & 0o777 == 0o700
    env = {"PATH": os.environ["PATH"], "GNUPGHOME": str(home), "HOME": str(tmp_path)}
    try:
        plain = subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
             "--decrypt", str(out)],
            input=benign.GPG_PASSPHRASE.encode() + b"\n", capture_output=True, env=env,
            timeout=60, check=True).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], env=env,
                       capture_output=True, timeout=30, check=False)
    assert plain == path.read_bytes()
