"""The drill report as a document for the leadership and the police: the national header,
place and date, the signature block, the signing key as ``secops keys export-public`` names
it, times with their zone, numbers in the language's own way; the snapshot named by the id it
has now (a pin rewrites it) while the signed JSON keeps the id at drill time; printings that
never replace each other; and the check of the signature, with secops and without it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_weekly_report import saigon_time, text_of  # noqa: F401 - the autouse TZ fixture

from secops.backup import lineage
from secops.cli.main import run
from secops.errors import IntegrityError
from secops.keys.signature import load_public_key, public_key_id
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir
from secops.reports import drill_report

REPO = Path(__file__).resolve().parents[2]
OLD = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
NEW = "f00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00dface"
STAMP = "20260315T030000Z"


def drill(**changes: Any) -> dict[str, Any]:
    return {"ok": True, "snapshot_id": OLD, "target": "local", "files_checked": 1234,
            "bytes": 5_000_000, "mismatched": [], "missing": [], "problems": [],
            "rto_s": 42.5, "rpo_s": 2.5, "time": "2026-03-15T03:00:00Z",
            "snapshot_time": "2026-03-15T02:59:57Z", "office": "tan-ky",
            "office_name": "UBND xã Tân Kỳ", "manifest_signed_by": "3f9a0c1b2d4e5f60",
            "warnings": [], **changes}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDir]:
    s = StateDir(tmp_path / "state")
    ensure_ed25519(s.ed25519_key, s.ed25519_pub)
    yield s


def key_id(state: StateDir) -> str:
    return public_key_id(load_public_key(state.ed25519_pub))


# -- the page -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_page_is_an_office_document(state: StateDir, lang: str) -> None:
    files = drill_report.write_report(state, drill(), lang, STAMP)
    page = text_of(Path(files["html"]).read_text(encoding="utf-8"))
    kid = key_id(state)
    if lang == "vi":
        for text in ("ỦY BAN NHÂN DÂN XÃ TÂN KỲ", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                     "Độc lập - Tự do - Hạnh phúc", "Số: /BC-UBND", "Tân Kỳ, ngày ",
                     "BÁO CÁO DIỄN TẬP KHÔI PHỤC DỮ LIỆU BẦU CỬ", "NGƯỜI LẬP BÁO CÁO",
                     "TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", "(Ký, ghi rõ họ tên, đóng dấu)",
                     "Họ và tên:", "Nơi nhận:", "Công an xã"):
            assert text in page, text
        assert f"(như lệnh “secops keys export-public” in ra): {kid}" in page
    else:
        for text in ("SOCIALIST REPUBLIC OF VIET NAM", "Independence - Freedom - Happiness",
                     "Tan Ky, ", "ELECTION DATA RECOVERY DRILL REPORT", "PREPARED BY",
                     "ON BEHALF OF THE PEOPLE'S COMMITTEE", "CHAIR", "Full name:",
                     "Recipients:", "Commune Police"):
            assert text in page, text
        assert f"(as “secops keys export-public” prints it): {kid}" in page
    json_name = f"drill-{STAMP}-local.json"
    assert f"secops report verify-drill {json_name} --public-key office-ed25519.pub" in page
    assert "openssl pkeyutl -verify -pubin -inkey office-ed25519.pub" in page
    sha = __import__("hashlib").sha256((state.reports / json_name).read_bytes()).hexdigest()
    assert sha in page


def test_times_have_their_zone_and_numbers_the_language_s_decimal(state: StateDir) -> None:
    vi = text_of(drill_report.render_html(drill(), "vi"))
    assert "15/03/2026 10:00:00 (UTC+07:00)" in vi and "15/03/2026 09:59:57 (UTC+07:00)" in vi
    assert "2,5 giây" in vi and "42,5 giây" in vi and "1.234" in vi and "4,8 MiB" in vi
    en = text_of(drill_report.render_html(drill(), "en"))
    assert "2026-03-15 10:00:00 (UTC+07:00)" in en
    assert "2.5 s" in en and "42.5 s" in en and "1,234" in en and "4.8 MiB" in en
    assert "2 giây" not in vi.replace("2,5 giây", "").replace("42,5 giây", "")
    minute = text_of(drill_report.render_html(drill(rpo_s=1.0, rto_s=3725.0), "vi"))
    assert "1 giây" in minute and "1 giờ 2 phút" in minute and "0 giờ" not in minute


def test_the_pdf_is_signed_and_carries_its_document_information(
        state: StateDir, require_binary: Callable[[str], str]) -> None:
    files = drill_report.write_report(state, drill(), "vi", STAMP)
    pdf = Path(files["pdf"])
    assert pdf.name == f"drill-{STAMP}-local.vi.pdf" and pdf.read_bytes().startswith(b"%PDF")
    assert Path(files["signature"]).name == f"drill-{STAMP}-local.vi.pdf.sig"
    out = drill_report.verify_file(pdf, load_public_key(state.ed25519_pub))
    assert out["ok"] and out["key_id"] == key_id(state)
    info = subprocess.run([require_binary("pdfinfo"), str(pdf)], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    assert re.search(r"^Author:\s+UBND xã Tân Kỳ$", info, re.M)
    assert re.search(r"^Title:\s+BÁO CÁO DIỄN TẬP", info, re.M) and "CreationDate:" in info
    text = subprocess.run([require_binary("pdftotext"), str(pdf), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text and "TM. ỦY BAN NHÂN DÂN" in text


# -- the snapshot id after a pin; printings -------------------------------------------------------


def test_a_pinned_snapshot_is_named_by_its_id_now(state: StateDir) -> None:
    files = drill_report.write_report(state, drill(), "vi", STAMP)
    first_pdf = Path(files["pdf"]).read_bytes()
    first_page = Path(files["html"]).read_text(encoding="utf-8")
    assert OLD in first_page
    lineage.record(state.root / "state.db", "local", OLD, NEW)     # what Engine.retag records
    json_path = Path(files["json"])
    again = drill_report.print_report(state, json_path, "vi")
    assert again["revision"] == 2 and again["pdf"].endswith(f"drill-{STAMP}-local.vi.r2.pdf")
    assert (again["snapshot_id"], again["recorded_snapshot_id"]) == (NEW, OLD)
    page = text_of(Path(again["html"]).read_text(encoding="utf-8"))
    snapshot_row = page[page.index("Bản sao lưu "):page.index("Thời điểm sao lưu")]
    assert snapshot_row.startswith(f"Bản sao lưu {NEW} Mã hiện nay, dùng mã này để khôi phục.")
    assert snapshot_row.endswith(f"Tệp JSON đã ký ghi mã tại thời điểm diễn tập: {OLD} ")
    assert "Đây là bản in lần 2; các bản in trước được giữ nguyên." in page
    assert json.loads(json_path.read_bytes())["snapshot_id"] == OLD  # the signed record stays
    drill_report.check_signature(json_path, load_public_key(state.ed25519_pub))
    assert Path(files["pdf"]).read_bytes() == first_pdf             # printing 1 untouched
    english = drill_report.print_report(state, json_path, "en")
    assert english["revision"] == 1 and english["pdf"].endswith(".en.pdf")
    assert NEW in Path(english["html"]).read_text(encoding="utf-8")


def test_a_json_that_does_not_verify_is_not_printed(state: StateDir) -> None:
    files = drill_report.write_report(state, drill(), "vi", STAMP)
    json_path = Path(files["json"])
    json_path.write_bytes(json_path.read_bytes().replace(b'"ok": true', b'"ok": false'))
    with pytest.raises(IntegrityError, match="BAD SIGNATURE"):
        drill_report.print_report(state, json_path, "en")
    assert not list(state.reports.glob("*.en.*"))


# -- checking the signature -----------------------------------------------------------------------


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_drill_passes_the_untouched_and_fails_the_tampered(
        state: StateDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = drill_report.write_report(state, drill(ok=False), "vi", STAMP)
    police = tmp_path / "police"                   # their own machine: no config, a copy
    police.mkdir()
    for name in (files["json"], f"{files['json']}.sig", files["pdf"], files["signature"]):
        shutil.copy(name, police)
    pub = police / "office-ed25519.pub"
    shutil.copy(state.ed25519_pub, pub)
    json_copy = police / Path(files["json"]).name
    code, out, err = cli(["report", "verify-drill", str(json_copy), "--public-key", str(pub)],
                         capsys)
    assert code == 0, err
    assert f"verified: signed by the office Ed25519 key {key_id(state)}" in out
    assert "FAILED" in out and OLD in out
    code, out, _ = cli(["report", "verify-drill", str(police / Path(files["pdf"]).name),
                        "--public-key", str(pub), "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True

    json_copy.write_bytes(json_copy.read_bytes().replace(b'"ok": false', b'"ok": true'))
    code, out, err = cli(["report", "verify-drill", str(json_copy), "--public-key", str(pub)],
                         capsys)
    assert code == 1 and "BAD SIGNATURE" in err and "verified" not in out

    other = tmp_path / "other.pub"
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pdf_copy = police / Path(files["pdf"]).name
    code, _, err = cli(["report", "verify-drill", str(pdf_copy), "--public-key", str(other)],
                       capsys)
    assert code == 1 and "signed by another key" in err

    (police / f"{pdf_copy.name}.sig").unlink()
    code, _, err = cli(["report", "verify-drill", str(pdf_copy), "--public-key", str(pub)],
                       capsys)
    assert code == 2 and "no such file" in err
    code, _, err = cli(["report", "verify-drill", str(json_copy)], capsys)
    assert code == 2 and "--public-key" in err


def test_the_documented_check_without_secops_works(
        state: StateDir, tmp_path: Path, require_binary: Callable[[str], str]) -> None:
    """docs/reports.md and the page give the same two commands (OpenSSL 3, jq)."""
    require_binary("openssl")
    require_binary("jq")
    files = drill_report.write_report(state, drill(), "vi", STAMP)
    work = tmp_path / "check"
    work.mkdir()
    for name in (files["json"], f"{files['json']}.sig"):
        shutil.copy(name, work)
    shutil.copy(state.ed25519_pub, work / "office-ed25519.pub")
    json_name = Path(files["json"]).name
    commands = [c.format(json=json_name, sig=f"{json_name}.sig")
                for c in drill_report.OPENSSL_CMDS]
    docs = (REPO / "docs" / "reports.md").read_text(encoding="utf-8")
    for c in drill_report.OPENSSL_CMDS:
        assert c.format(json="drill-20260315T030000Z-local.json",
                        sig="drill-20260315T030000Z-local.json.sig") in docs, c
    script = " && ".join(commands)
    good = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                          timeout=60, check=False)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good
    target = work / json_name
    target.write_bytes(target.read_bytes().replace(b'"files_checked": 1234',
                                                   b'"files_checked": 1235'))
    bad = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode != 0 and "Signature Verified Successfully" not in bad.stdout
