"""A forger of a signed report against ``secops report verify`` (issue 17): every known PDF
signature attack (Mladenov et al. 2019: universal signature forgery, incremental saving,
signature wrapping; Mainka et al. 2020: shadow attacks; a second signature, a weak chain,
a backdated or foreign time) fails with exit 1 and a reason in Vietnamese and English, and
its untouched twin passes; hostile input is exit 2 with our message, in bounded time.

The office's key here is a software key (the token is tests/integration/test_pades.py's
business: the verifier never sees it), the TSA pyHanko's in-process one, the CA
tests/integration/pki.py's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from integration import pki
from secops.cli.main import run
from secops.reports.pdf import render_report_pdf
from secops.signing import pades
from secops.signing.keys import to_asn1

HTML = ("<html lang='vi'><head><title>Báo cáo tuần</title></head><body><h1>Báo cáo tuần "
        "2026-W11</h1><p>Kết quả kiểm phiếu: không có sự cố.</p></body></html>")


@dataclass(frozen=True)
class Lab:
    folder: Path
    now: datetime
    ca: pki.Ca
    other: pki.Ca
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    unsigned: bytes
    good: bytes            # B-T, the untouched twin
    bb: bytes              # B-B

    @property
    def root(self) -> Path:
        return self.folder / "root.pem"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signer_of(key: rsa.RSAPrivateKey, cert: x509.Certificate, chain: list[x509.Certificate]
              ) -> Any:
    from asn1crypto import keys as asn1_keys
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return SimpleSigner(signing_cert=to_asn1(cert),
                        signing_key=asn1_keys.PrivateKeyInfo.load(der),
                        cert_registry=SimpleCertificateStore.from_certs(
                            [to_asn1(c) for c in chain]))


def stamper(ca: pki.Ca, now: datetime, *, key: rsa.RSAPrivateKey | None = None,
            cert: x509.Certificate | None = None) -> Any:
    """A TSA whose certificate ``ca`` issued (by default with the timeStamping usage)."""
    from asn1crypto import keys as asn1_keys
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    if key is None or cert is None:
        key = new_key()
        cert = ca.issue(key.public_key(), pki.name("TSA"), not_before=now - pki.DAY,
                        not_after=now + 365 * pki.DAY, signing=False, tsa=True)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=to_asn1(cert),
                            tsa_key=asn1_keys.PrivateKeyInfo.load(der),
                            certs_to_embed=SimpleCertificateStore.from_certs([to_asn1(ca.cert)]))


def sign(pdf: bytes, signer: Any, timestamper: Any = None) -> bytes:
    return pades.sign_bytes(pdf, signer, "Đã ký số bởi: UBND xã Tân Kỳ", pades.DEFAULT_BOX,
                            timestamper, reason="Xác nhận báo cáo", name="test")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    folder = tmp_path_factory.mktemp("forgery")
    now = pki.utcnow()
    ca, other = pki.make_ca("CA gốc thử nghiệm", now), pki.make_ca("CA lạ", now)
    key = new_key()
    cert = ca.issue(key.public_key(), pki.name("Nguyễn Văn Thắng"), not_before=now - pki.DAY,
                    not_after=now + 365 * pki.DAY)
    unsigned, _ = render_report_pdf(HTML, None, None, "UBND xã Tân Kỳ", "vi")
    office = signer_of(key, cert, [ca.cert])
    pki.write_pem(folder / "root.pem", ca.cert)
    return Lab(folder, now, ca, other, key, cert, unsigned,
               sign(unsigned, office, stamper(ca, now)), sign(unsigned, office))


def verify(lab: Lab, data: bytes, capsys: pytest.CaptureFixture[str],
           name: str = "forged.pdf") -> tuple[int, dict[str, Any], dict[str, str]]:
    """Exit code, the English JSON, and {check code: Vietnamese detail} of the failed checks
    (the same run in Vietnamese)."""
    path = lab.folder / name
    path.write_bytes(data)
    docs = []
    for lang in ("en", "vi"):
        code = run(["report", "verify", str(path), "--trust", str(lab.root), "--json",
                    "--lang", lang])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        docs.append((code, json.loads(out) if out else {}, err))
    (code, doc, _), (code_vi, doc_vi, err_vi) = docs
    assert code == code_vi
    vi = {c["code"]: c["detail"] for s in doc_vi.get("signatures", []) for c in s["checks"]
          if not c["ok"]}
    if code == 1:
        assert "chữ ký số KHÔNG hợp lệ" in err_vi, err_vi
    return code, doc, vi


def failed(doc: dict[str, Any]) -> dict[str, str]:
    """{check code: English detail} of every failed check of every signature."""
    return {c["code"]: c["detail"] for s in doc["signatures"] for c in s["checks"]
            if not c["ok"]}


def assert_forgery_caught(lab: Lab, data: bytes, capsys: pytest.CaptureFixture[str],
                          code_name: str) -> dict[str, str]:
    code, doc, vi = verify(lab, data, capsys)
    assert code == 1 and not doc["ok"], doc
    bad = failed(doc)
    assert code_name in bad, bad
    assert vi[code_name] and vi[code_name] != bad[code_name]     # said in both languages
    return bad


def update(data: bytes, change: Callable[[Any], None]) -> bytes:
    """``data`` with an incremental update made by ``change(writer)``."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(BytesIO(data))
    change(w)
    out = BytesIO()
    w.write(out)
    return out.getvalue()


def byte_range(data: bytes) -> re.Match[bytes]:
    m = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\] *", data)
    assert m is not None
    return m


def same_length(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(new) <= len(old)
    return data.replace(old, new.ljust(len(old)), 1)


# -- the untouched twins ---------------------------------------------------------------------

def test_the_untouched_twins_pass(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    for data in (lab.good, lab.bb):
        code, doc, _ = verify(lab, data, capsys, "twin.pdf")
        assert code == 0 and doc["ok"], doc


# -- universal signature forgery: the signature dictionary itself --------------------------

def _usf(lab: Lab, how: str) -> bytes:
    data = lab.good
    m = byte_range(data)
    _, b, c, d = map(int, m.groups())
    br = m.group(0)
    return {
        "no ByteRange": same_length(data, br, b""),
        "empty ByteRange": same_length(data, br, b"/ByteRange []"),
        "odd ByteRange": same_length(data, br, b"/ByteRange [0 %d %d]" % (b, c)),
        "null ByteRange": same_length(data, br, b"/ByteRange null"),
        "huge ByteRange": same_length(data, br, b"/ByteRange [0 9999999999999 1 99999999999]"),
        "negative ByteRange": same_length(data, br, b"/ByteRange [0 -5 %d %d]" % (c, d)),
        "zeroed Contents": data[:b] + b"<" + b"0" * (c - b - 2) + b">" + data[c:],
        "no Contents": data.replace(b"/Contents <", b"/Xontents <", 1),
    }[how]


@pytest.mark.parametrize("how", ["no ByteRange", "empty ByteRange", "odd ByteRange",
                                 "null ByteRange", "huge ByteRange", "negative ByteRange",
                                 "zeroed Contents", "no Contents"])
def test_a_signature_dictionary_forged_fails_without_a_crash(
        lab: Lab, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = verify(lab, _usf(lab, how), capsys)
    assert code == 1 and not doc["ok"], (how, doc)
    assert {"intact_no", "intact_malformed"} & set(failed(doc)), failed(doc)


# -- signature wrapping: the signed bytes moved ----------------------------------------------

def test_signed_bytes_relocated_fail(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    data = lab.good
    m = byte_range(data)
    a, b, c, d = map(int, m.groups())
    forged_tail = b"% the forger's own objects and xref\n" + data[c:]
    moved = data[:c] + forged_tail + data[c:]           # the signed tail moved to the end
    new_br = b"/ByteRange [%d %d %d %d]" % (a, b, c + len(forged_tail), d)
    code, doc, _ = verify(lab, same_length(moved, m.group(0), new_br), capsys)
    # the /ByteRange is itself signed: intact fails; here the shifted xref makes the file
    # unreadable first (bad input), which is no pass either
    assert code == 2 or (code == 1 and "intact_no" in failed(doc)), doc


# -- incremental saving and shadow attacks ---------------------------------------------------

def _page_ref(w: Any) -> Any:
    return w.root["/Pages"]["/Kids"].raw_get(0)


def _hide_contents(w: Any) -> None:
    """Shadow "hide": the page's content stream replaced by an empty one (same object)."""
    from pyhanko.pdf_utils import generic

    contents = _page_ref(w).get_object().raw_get("/Contents")
    ref = contents if isinstance(contents, generic.IndirectObject) else contents[0]
    stream = ref.get_object()
    stream._data, stream._encoded_data = b"", None
    if "/Filter" in stream:
        del stream["/Filter"]
    w.mark_update(ref)


def _replace_pages(w: Any) -> None:
    """An update that only points /Root /Pages at a forged page tree."""
    from pyhanko.pdf_utils import generic as g

    content = w.add_object(g.StreamObject(stream_data=b"BT 72 700 Td (FORGED) Tj ET"))
    pages = w.add_object(g.DictionaryObject({g.NameObject("/Type"): g.NameObject("/Pages"),
                                             g.NameObject("/Count"): g.NumberObject(1),
                                             g.NameObject("/Kids"): g.ArrayObject()}))
    page = w.add_object(g.DictionaryObject({
        g.NameObject("/Type"): g.NameObject("/Page"), g.NameObject("/Parent"): pages,
        g.NameObject("/MediaBox"): g.ArrayObject([g.NumberObject(v) for v in (0, 0, 595, 842)]),
        g.NameObject("/Contents"): content, g.NameObject("/Resources"): g.DictionaryObject()}))
    pages.get_object()["/Kids"].append(page)
    w.root[g.NameObject("/Pages")] = pages
    w.update_root()


def _open_action(w: Any) -> None:
    from pyhanko.pdf_utils import generic as g

    js = w.add_object(g.DictionaryObject({g.NameObject("/S"): g.NameObject("/JavaScript"),
                                          g.NameObject("/JS"): g.TextStringObject(
                                              "app.alert('Báo cáo đã được cập nhật')")}))
    w.root[g.NameObject("/OpenAction")] = js
    w.update_root()


def _annotation(w: Any) -> None:
    """Shadow "replace": a FreeText annotation over the text."""
    from pyhanko.pdf_utils import generic as g

    ref = _page_ref(w)
    annot = w.add_object(g.DictionaryObject({
        g.NameObject("/Type"): g.NameObject("/Annot"),
        g.NameObject("/Subtype"): g.NameObject("/FreeText"),
        g.NameObject("/Rect"): g.ArrayObject([g.NumberObject(v) for v in (50, 700, 500, 760)]),
        g.NameObject("/Contents"): g.TextStringObject("Có 3 sự cố"),
        g.NameObject("/DA"): g.TextStringObject("/Helv 12 Tf 0 g")}))
    page = ref.get_object()
    page[g.NameObject("/Annots")] = g.ArrayObject([*page.get("/Annots", []), annot])
    w.mark_update(ref)


def _form_field(w: Any) -> None:
    """A text field with a value, added to the form after signing."""
    from pyhanko.pdf_utils import generic as g

    ref = _page_ref(w)
    fld = w.add_object(g.DictionaryObject({
        g.NameObject("/FT"): g.NameObject("/Tx"), g.NameObject("/T"): g.TextStringObject("x"),
        g.NameObject("/V"): g.TextStringObject("Có 3 sự cố"),
        g.NameObject("/Type"): g.NameObject("/Annot"),
        g.NameObject("/Subtype"): g.NameObject("/Widget"), g.NameObject("/P"): ref,
        g.NameObject("/Rect"): g.ArrayObject([g.NumberObject(v) for v in (50, 700, 500, 760)])}))
    w.root["/AcroForm"]["/Fields"].append(fld)
    form = w.root.raw_get("/AcroForm")
    if isinstance(form, g.IndirectObject):
        w.mark_update(form)
    else:
        w.update_root()
    page = ref.get_object()
    page[g.NameObject("/Annots")] = g.ArrayObject([*page.get("/Annots", []), fld])
    w.mark_update(ref)


def _signature_appearance(w: Any) -> None:
    """The visible signature box redrawn (a different signer's name in the box)."""
    from pyhanko.pdf_utils import generic as g

    field = w.root["/AcroForm"]["/Fields"][0].get_object()
    normal = field["/AP"].raw_get("/N")
    assert isinstance(normal, g.IndirectObject)
    stream = normal.get_object()
    stream._data, stream._encoded_data = b"BT (Tran Van B) Tj ET", None
    if "/Filter" in stream:
        del stream["/Filter"]
    w.mark_update(normal)


@pytest.mark.parametrize("change", [_hide_contents, _replace_pages, _open_action,
                                    _annotation, _form_field, _signature_appearance],
                         ids=lambda f: f.__name__.strip("_"))
def test_an_update_after_signing_fails(lab: Lab, change: Callable[[Any], None],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = assert_forgery_caught(lab, update(lab.good, change), capsys, "unchanged_no")
    assert "1 update(s) after the signature" in bad["unchanged_no"]


def _hidden_update(lab: Lab) -> bytes:
    """The shadow "hide" update without its closing ``%%EOF``: the validator reads the file
    up to the signed revision's ``%%EOF`` (it looks for the last one), a repairing reader
    (poppler, and so every viewer built on it) applies the update."""
    data = update(lab.good, _hide_contents)
    return data[:data.rindex(b"%%EOF")]


def test_an_update_without_its_eof_marker_is_not_hidden(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    bad = assert_forgery_caught(lab, _hidden_update(lab), capsys, "unchanged_hidden")
    assert "bytes after the signed part" in bad["unchanged_hidden"]


@pytest.mark.requires_pdfsig          # poppler-utils: pdftotext comes with pdfsig
def test_the_hidden_update_is_what_a_reader_shows(lab: Lab, tmp_path: Path,
                                                  require_binary: Callable[[str], str]
                                                  ) -> None:
    """Why the test above matters: poppler shows the update the validator skips."""
    pdftotext = require_binary("pdftotext")

    def text(data: bytes) -> str:
        path = tmp_path / "shown.pdf"
        path.write_bytes(data)
        return subprocess.run([pdftotext, str(path), "-"], capture_output=True, text=True,
                              timeout=60, check=False).stdout

    assert "Kết quả kiểm phiếu" in text(lab.good)
    assert "Kết quả kiểm phiếu" not in text(_hidden_update(lab))


@pytest.mark.parametrize("tail", [
    b"\n<html><script>alert(1)</script></html>\n",        # a polyglot's second face
    b"\n99 0 obj\n(x)\nendobj\nstartxref\n%(sx)s\n%%%%EOF\n",  # a second pointer to the old
])                                                           # xref, an object between
def test_bytes_after_the_signed_revision_fail(lab: Lab, tail: bytes,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    m = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", lab.good)
    assert m is not None
    data = lab.good + (tail % {b"sx": m.group(1)} if b"%(sx)s" in tail else tail)
    assert_forgery_caught(lab, data, capsys, "unchanged_hidden")


def test_trailing_line_ends_are_harmless(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = verify(lab, lab.good + b"\r\n\n", capsys)
    assert code == 0 and doc["ok"], doc


# -- other signers, weak chains, time ------------------------------------------------------

def _second_signature(data: bytes, signer: Any) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(field_name="Sig2", md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    out = signers.PdfSigner(meta, signer).sign_pdf(IncrementalPdfFileWriter(BytesIO(data)))
    return bytes(out.getvalue())


def test_a_second_signature_fails(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    now = lab.now
    foreign_key, own_key = new_key(), new_key()
    foreign = lab.other.issue(foreign_key.public_key(), pki.name("Kẻ giả mạo"),
                              not_before=now - pki.DAY, not_after=now + 30 * pki.DAY)
    bad = assert_forgery_caught(
        lab, _second_signature(lab.good, signer_of(foreign_key, foreign, [lab.other.cert])),
        capsys, "chain_no")
    assert "unchanged_no" in bad            # and the office's signature sees the update
    # even by a certificate of the same CA (another official's): the first one sees it
    colleague = lab.ca.issue(own_key.public_key(), pki.name("Cán bộ khác"),
                             not_before=now - pki.DAY, not_after=now + 30 * pki.DAY)
    assert_forgery_caught(
        lab, _second_signature(lab.good, signer_of(own_key, colleague, [lab.ca.cert])),
        capsys, "unchanged_no")


def _intermediate(lab: Lab, *, ca: bool, cert_sign: bool) -> pki.Ca:
    key = new_key()
    cert = (x509.CertificateBuilder().subject_name(pki.name("CA trung gian"))
            .issuer_name(lab.ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(lab.now - pki.DAY).not_valid_after(lab.now + 30 * pki.DAY)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(lab.ca.key, hashes.SHA256()))
    return pki.Ca(key, cert)


@pytest.mark.parametrize(("ca", "cert_sign"), [(False, True), (True, False)],
                         ids=["no CA rights", "no keyCertSign"])
def test_a_chain_through_an_intermediate_that_may_not_issue_fails(
        lab: Lab, ca: bool, cert_sign: bool, capsys: pytest.CaptureFixture[str]) -> None:
    middle = _intermediate(lab, ca=ca, cert_sign=cert_sign)
    key = new_key()
    leaf = middle.issue(key.public_key(), pki.name("Nguyễn Văn Thắng"),
                        not_before=lab.now - pki.DAY, not_after=lab.now + 30 * pki.DAY)
    data = sign(lab.unsigned, signer_of(key, leaf, [middle.cert, lab.ca.cert]))
    assert_forgery_caught(lab, data, capsys, "chain_no")
    # the twin: the same chain through a proper intermediate passes
    proper = _intermediate(lab, ca=True, cert_sign=True)
    leaf = proper.issue(key.public_key(), pki.name("Nguyễn Văn Thắng"),
                        not_before=lab.now - pki.DAY, not_after=lab.now + 30 * pki.DAY)
    code, doc, _ = verify(lab, sign(lab.unsigned, signer_of(key, leaf,
                                                            [proper.cert, lab.ca.cert])),
                          capsys, "twin.pdf")
    assert code == 0, doc


def test_a_backdated_signature_by_an_expired_certificate_fails(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """B-B: the signing time is the signer's claim. An old certificate's key (the token of
    the former chairman) signs today and claims a day in its validity: only a timestamp
    could show the signature is that old, so it must not pass."""
    key = new_key()
    old = lab.ca.issue(key.public_key(), pki.name("Nguyễn Văn Thắng"),
                       not_before=lab.now - 400 * pki.DAY, not_after=lab.now - 30 * pki.DAY)
    with mock.patch("pyhanko.sign.signers.pdf_signer.datetime") as clock:
        clock.now.return_value = lab.now - 60 * pki.DAY
        data = sign(lab.unsigned, signer_of(key, old, [lab.ca.cert]))
    bad = assert_forgery_caught(lab, data, capsys, "validity_unproven")
    assert "as the signer claims" in bad["validity_unproven"]


def test_a_certificate_valid_now_but_not_at_the_claimed_time_fails(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch("pyhanko.sign.signers.pdf_signer.datetime") as clock:
        clock.now.return_value = lab.now - 30 * pki.DAY          # before the cert's start
        data = sign(lab.unsigned, signer_of(lab.key, lab.cert, [lab.ca.cert]))
    assert_forgery_caught(lab, data, capsys, "validity_early")


def test_a_timestamp_from_outside_the_trust_set_fails(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    office = signer_of(lab.key, lab.cert, [lab.ca.cert])
    assert_forgery_caught(lab, sign(lab.unsigned, office, stamper(lab.other, lab.now)), capsys,
                          "timestamp_bad")
    # a certificate under the trusted root without the timeStamping usage is no TSA either
    key = new_key()
    official = lab.ca.issue(key.public_key(), pki.name("Không phải TSA"),
                            not_before=lab.now - pki.DAY, not_after=lab.now + 30 * pki.DAY)
    assert_forgery_caught(lab, sign(lab.unsigned, office,
                                    stamper(lab.ca, lab.now, key=key, cert=official)),
                          capsys, "timestamp_bad")


def test_a_document_timestamp_is_validation_data_not_a_crash(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    for tsa_ca in (lab.ca, lab.other):
        w = IncrementalPdfFileWriter(BytesIO(lab.good))
        data = signers.PdfTimeStamper(stamper(tsa_ca, lab.now)).timestamp_pdf(w, "sha256")
        code, doc, _ = verify(lab, data.getvalue(), capsys)
        assert code == 0 and [s["field"] for s in doc["signatures"]] == ["ChuKySo"], doc


# -- hostile input: exit 2, our message, bounded time ---------------------------------------

def _cli_error(target: Path, lab: Lab, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run(["report", "verify", str(target), "--trust", str(lab.root)])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


@pytest.mark.timeout(20)
def test_a_fifo_a_device_and_a_directory_are_refused_at_once(
        lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "report.pdf"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.pdf"
    zero.symlink_to("/dev/zero")
    for target in (fifo, zero):
        code, err = _cli_error(target, lab, capsys)
        assert code == 2 and "not a regular file" in err, err
    folder = tmp_path / "folder.pdf"
    folder.mkdir()
    code, err = _cli_error(folder, lab, capsys)
    assert code == 2 and "is a directory" in err, err
    # a symlink to a signed report is the report
    link = tmp_path / "link.pdf"
    (tmp_path / "real.pdf").write_bytes(lab.good)
    link.symlink_to(tmp_path / "real.pdf")
    assert _cli_error(link, lab, capsys)[0] == 0


def _raw_update(data: bytes, objects: list[tuple[int, bytes]], root: bytes | None = None
                ) -> bytes:
    """An incremental update with a classic xref table, written by hand."""
    m = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)
    assert m is not None
    body, offsets = b"\n", {}
    for num, content in objects:
        offsets[num] = len(data) + len(body)
        body += b"%d 0 obj\n%s\nendobj\n" % (num, content)
    xref = b"xref\n" + b"".join(b"%d 1\n%010d 00000 n \n" % (n, offsets[n]) for n in offsets)
    root = root or re.findall(rb"/Root (\d+ \d+ R)", data)[-1]
    trailer = b"trailer\n<< /Size %d /Prev %s /Root %s >>\nstartxref\n%d\n%%%%EOF\n" % (
        max(offsets) + 1, m.group(1), root, len(data) + len(body))
    return data + body + xref + trailer


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["truncated", "garbage before the header", "encrypted",
                                 "deep nesting", "xref loop", "zip bomb"])
def test_hostile_pdfs_are_bad_input_or_a_failed_check(
        lab: Lab, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    import resource
    import zlib

    data = lab.good
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "garbage before the header":
        data = b"<html><body>Bao cao khac</body></html>\n" + data
    elif how == "encrypted":
        from pyhanko.pdf_utils.crypt import StandardSecurityHandler
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.pdf_utils.writer import copy_into_new_writer

        w = copy_into_new_writer(PdfFileReader(BytesIO(lab.good)))
        w._assign_security_handler(StandardSecurityHandler.build_from_pw("chu", "khach"))
        out = BytesIO()
        w.write(out)
        data = out.getvalue()
    elif how == "deep nesting":     # the catalog replaced by one nested 100,000 deep
        data = _raw_update(data, [(900, b"<< /Type /Catalog /Pages 1 0 R /X " + b"[" * 100_000
                                   + b"]" * 100_000 + b" >>")], root=b"900 0 R")
    elif how == "xref loop":        # an update whose /Prev points at itself
        m = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)
        assert m is not None
        at = len(data) + 1
        root = re.findall(rb"/Root (\d+ \d+ R)", data)[-1]
        data += (b"\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 /Prev %d /Root %s "
                 b">>\nstartxref\n%d\n%%%%EOF\n" % (at, root, at))
    else:                           # 1 GiB of zeros as the update's xref stream
        m = re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data)
        assert m is not None
        packer = zlib.compressobj(9)
        bomb = b"".join(packer.compress(bytes(1 << 24)) for _ in range(64)) + packer.flush()
        at = len(data) + 1
        data += (b"\n900 0 obj\n<< /Type /XRef /Size 901 /W [1 4 2] /Index [0 1] /Prev %s "
                 b"/Filter /FlateDecode /Length %d >>\nstream\n" % (m.group(1), len(bomb))
                 + bomb + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % at)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, doc, _ = verify(lab, data, capsys, "hostile.pdf")
    assert code in (1, 2), (how, code)
    assert code == 2 or not doc["ok"]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 256, (how, grown_mib)


def test_garbage_before_the_header_says_so(lab: Lab, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "polyglot.pdf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 60 + lab.good)
    code, err = _cli_error(path, lab, capsys)
    assert code == 2 and "64 bytes of something else before the PDF header" in err, err


# -- the signer side: a time-stamping service that breaks off --------------------------------

@pytest.mark.parametrize("answer", ["bad status line", "DER of the wrong shape", "cut off"])
def test_a_broken_tsa_answer_is_a_signing_error(lab: Lab, answer: str) -> None:
    """Whatever the TSA sends, signing fails with our SigningError (exit 3) and returns
    nothing: the report is signed in memory, so nothing is half-written."""
    import socket

    from secops.errors import SigningError
    from secops.signing.tsa import HttpTimeStamper

    class Handler(pki.QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if answer == "bad status line":
                self.wfile.write(b"HTTP/9 \x1b[31mXYZ\r\n\r\n")
                return
            body = b"\x30\x03\x02\x01\x05" if answer == "DER of the wrong shape" else \
                b"\x30\x82\x13\x88\x30\x03"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (0 if answer != "cut off"
                                                                else 4000)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if answer == "cut off":
                self.connection.shutdown(socket.SHUT_RDWR)

    server, thread, base = pki.serve_http(Handler)
    try:
        url = f"{base}/tsa"
        with pytest.raises(SigningError) as e:
            sign(lab.unsigned, signer_of(lab.key, lab.cert, [lab.ca.cert]),
                 HttpTimeStamper(url, 5))
        assert e.value.exit_code == 3 and "\x1b" not in str(e.value)
    finally:
        pki.stop_http(server, thread)
