"""PAdES signatures on the reports with a real token: SoftHSM2 holding the office's key
(generated on the token, used through PKCS#11), a test CA made here, an RFC 3161 TSA on a
loopback port. Every signed file is checked by pyHanko's validator (``secops report
verify``) AND by poppler's ``pdfsig`` (NSS: independent code). Each tampered twin fails
with its own message; the untouched file passes both."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from integration import pki
from secops.cli.main import run
from secops.config.schema import Signing
from secops.errors import SigningError
from secops.reports.pdf import render_report_pdf
from secops.signing import pades
from secops.signing.keys import open_key
from secops.signing.tsa import HttpTimeStamper
from secops.signing.verify import verify_pdf

pytestmark = [pytest.mark.requires_softhsm, pytest.mark.requires_pdfsig]

OFFICE = "UBND xã Tân Kỳ"
HTML = ("<html lang='vi'><head><title>Báo cáo tuần</title></head><body><h1>Báo cáo tuần "
        "2026-W11</h1><p>Ủy ban nhân dân xã Tân Kỳ: sao lưu, kiểm tra toàn vẹn.</p></body>"
        "</html>")


@dataclass
class World:
    root: Path
    module: str
    ca: pki.Ca
    other_ca: pki.Ca
    tsa: pki.Tsa
    files: dict[str, Path]              # certificates (PEM), the PIN file, the NSS db
    public: pki.PublicKey               # the token key's public half
    signed_bt: bytes                    # the untouched twins
    signed_bb: bytes

    def signing(self, cert: str = "good", **changes: Any) -> Signing:
        base = Signing(pkcs11_module=self.module, token_label=pki.TOKEN, key_label=pki.KEY,
                       pin_file=str(self.files["pin"]), certificate=str(self.files[cert]),
                       chain=[str(self.files["root"])], tsa_url=self.tsa.url,
                       signer_title="Chủ tịch")
        return msgspec.structs.replace(base, **changes)

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, require_binary: Callable[[str], str]
          ) -> Iterator[World]:
    for binary in ("softhsm2-util", "pdfsig", "certutil"):
        require_binary(binary)
    module = pki.softhsm_module()
    assert module is not None
    root = tmp_path_factory.mktemp("pades")
    now = pki.utcnow()
    ca, other = pki.make_ca("CA gốc thử nghiệm", now), pki.make_ca("CA lạ", now)
    public = pki.init_token(root / "hsm", module)
    subject = pki.name("Nguyễn Văn Thắng")
    certs = {
        "good": ca.issue(public, subject, not_before=now - pki.DAY,
                         not_after=now + 365 * pki.DAY),
        "expired": ca.issue(public, subject, not_before=now - 30 * pki.DAY,
                            not_after=now - pki.DAY),
        "early": ca.issue(public, subject, not_before=now + 10 * pki.DAY,
                          not_after=now + 365 * pki.DAY),
        "foreign": other.issue(public, subject, not_before=now - pki.DAY,
                               not_after=now + 365 * pki.DAY),
        "encrypt_only": ca.issue(public, subject, not_before=now - pki.DAY,
                                 not_after=now + 365 * pki.DAY, signing=False),
    }
    files = {k: pki.write_pem(root / f"{k}.pem", c) for k, c in certs.items()}
    files["root"] = pki.write_pem(root / "root.pem", ca.cert)
    files["other_root"] = pki.write_pem(root / "other-root.pem", other.cert)
    files["pin"] = root / "pin"
    files["pin"].write_text(pki.USER_PIN + "\n")
    files["pin"].chmod(0o600)
    nss = root / "nss"
    nss.mkdir()
    for argv in (["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"],
                 ["certutil", "-A", "-d", f"sql:{nss}", "-n", "test-root", "-t", "CT,C,C",
                  "-i", str(files["root"])]):
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    files["nss"] = nss
    tsa = pki.Tsa(ca, now)
    try:
        w = World(root, module, ca, other, tsa, files, public, b"", b"")
        pdf, _ = render_report_pdf(HTML, None, None, OFFICE, "vi")
        w.files["unsigned"] = w.write("unsigned.pdf", pdf)
        w.signed_bt = pades.sign_pdf(pdf, w.signing(), OFFICE, "vi").data
        w.signed_bb = pades.sign_pdf(pdf, w.signing(tsa_url=None), OFFICE, "vi").data
        yield w
    finally:
        tsa.stop()


def pdfsig(w: World, path: Path) -> str:
    # no -no-ocsp: poppler 22.12 then reports "Unknown issue" for any certificate; the test
    # certificates name no OCSP responder, so nothing is fetched
    done = subprocess.run(["pdfsig", "-nssdir", f"sql:{w.files['nss']}", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def checks(doc: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    [sig] = doc["signatures"]
    return {c["name"]: (c["ok"], c["code"]) for c in sig["checks"]}


def box_text(data: bytes) -> str:
    """The visible box's text, as the PDF says it (its /ActualText, UTF-16)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(BytesIO(data))
    [field] = reader.root["/AcroForm"]["/Fields"]
    stream = field.get_object()["/AP"]["/N"].get_object().data
    for ref in field.get_object()["/AP"]["/N"]["/Resources"].get("/XObject", {}).values():
        stream += ref.get_object().data
    texts = []
    for raw in re.findall(rb"/ActualText \((.*?)\)\s*>>", stream, re.S):
        unescaped = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw)
        unescaped = re.sub(rb"\\(.)", rb"\1", unescaped)
        texts.append(unescaped.decode("utf-16"))
    return "\n".join(texts)


# -- the untouched file ------------------------------------------------------------------------

def test_a_timestamped_report_passes_pyhanko_and_pdfsig(world: World,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    path = world.write("bt.pdf", world.signed_bt)
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"], out
    [sig] = doc["signatures"]
    assert sig["level"] == "B-T" and sig["time_source"] == "timestamp"
    assert sig["timestamp"]["ok"] and "TSA" in sig["timestamp"]["tsa"]
    assert sig["signer"]["name"] == "Nguyễn Văn Thắng"
    assert all(ok for ok, _ in checks(doc).values())
    assert checks(doc)["unchanged"] == (True, "unchanged_yes")
    report = pdfsig(world, path)
    assert "Signature is Valid" in report and "Certificate is Trusted" in report, report
    assert "Total document signed" in report and "ETSI.CAdES.detached" in report, report


def test_the_box_names_office_signer_time_and_serial_in_vietnamese(world: World) -> None:
    text = box_text(world.signed_bt)
    serial = f"{x509.load_pem_x509_certificate(world.files['good'].read_bytes()).serial_number:X}"
    assert "Đã ký số bởi: UBND xã Tân Kỳ" in text, text
    assert "Người ký: Nguyễn Văn Thắng, Chủ tịch" in text
    assert re.search(r"Thời gian ký: \d\d/\d\d/\d{4} \d\d:\d\d:\d\d", text)
    assert f"Số hiệu chứng thư: {serial}" in text
    assert "PAdES B-T (có dấu thời gian)" in text


def test_without_a_tsa_it_is_b_b_and_says_so(world: World,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = world.write("bb.pdf", world.signed_bb)
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", "--lang", "en", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["signatures"][0]["level"] == "B-B"
    assert doc["signatures"][0]["time_source"] == "claimed"
    assert checks(doc)["timestamp"] == (True, "timestamp_none")
    assert "PAdES B-B (không có dấu thời gian)" in box_text(world.signed_bb)
    assert "Signature is Valid" in pdfsig(world, path)


def test_human_output_is_vietnamese_by_default_and_english_on_request(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    path = world.write("human.pdf", world.signed_bt)
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       capsys=capsys)
    assert code == 0 and "Chữ ký nguyên vẹn" in out and "chữ ký số hợp lệ" in out
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--lang", "en", capsys=capsys)
    assert code == 0 and "Signature intact" in out and "digital signature valid" in out


# -- the tampered twins ------------------------------------------------------------------------

def test_one_byte_changed_after_signing_fails_both(world: World,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(world.signed_bt)
    at = data.index(b"/Creator")              # inside the first signed range, a harmless name
    data[at + 12] ^= 0x01
    path = world.write("byte.pdf", bytes(data))
    code, out, err = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                         "--json", capsys=capsys)
    assert code == 1 and checks(json.loads(out))["intact"] == (False, "intact_no")
    assert "Chữ ký nguyên vẹn" in err
    assert "Digest Mismatch" in pdfsig(world, path)


def test_a_page_appended_by_an_incremental_update_is_reported(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(BytesIO(world.signed_bt))
    content = w.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 700 Td "
                                                            b"(Ket qua da sua) Tj ET"))
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject(
            [generic.NumberObject(v) for v in (0, 0, 595, 842)]),
        generic.NameObject("/Resources"): generic.DictionaryObject(),
        generic.NameObject("/Contents"): content})
    w.insert_page(page)
    out_pdf = BytesIO()
    w.write(out_pdf)
    path = world.write("appended.pdf", out_pdf.getvalue())
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", "--lang", "en", capsys=capsys)
    doc = json.loads(out)
    ok, code_name = checks(doc)["unchanged"]
    assert code == 1 and not ok and code_name == "unchanged_no", out
    detail = next(c["detail"] for c in doc["signatures"][0]["checks"]
                  if c["name"] == "unchanged")
    assert "1 update(s) after the signature" in detail
    assert checks(doc)["intact"] == (True, "intact_yes")   # the signed revision itself is fine
    report = pdfsig(world, path)
    assert "Signature is Valid" in report and "Total document signed" not in report, report


@pytest.mark.parametrize("field", ["/Title", "/Author", "XMP"])
def test_the_document_s_metadata_changed_after_signing_is_reported(
        world: World, field: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the document information (title, author) or an XMP metadata stream rewritten
    by an incremental update: nothing a page shows, but what a reader's window title and
    document properties show. The validator lets it pass; ``unchanged`` does not. (The
    untouched twin, and a B-LT file's validation data added after signing: passing above.)"""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(BytesIO(world.signed_bt))
    if field == "XMP":
        xmp = w.add_object(generic.StreamObject(
            {generic.NameObject("/Type"): generic.NameObject("/Metadata"),
             generic.NameObject("/Subtype"): generic.NameObject("/XML")},
            stream_data="<x:xmpmeta xmlns:x='adobe:ns:meta/'>Biên bản đã sửa</x:xmpmeta>"
            .encode()))
        w.root[generic.NameObject("/Metadata")] = xmp
        w.update_root()
    else:
        info = w.trailer["/Info"]
        info[generic.NameObject(field)] = generic.TextStringObject("Biên bản đã sửa")
        w.update_container(info)
    out_pdf = BytesIO()
    w.write(out_pdf)
    path = world.write(f"metadata-{field.lstrip('/')}.pdf", out_pdf.getvalue())
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", "--lang", "en", capsys=capsys)
    doc = json.loads(out)
    assert code == 1 and checks(doc)["unchanged"] == (False, "unchanged_metadata"), out
    detail = next(c["detail"] for c in doc["signatures"][0]["checks"]
                  if c["name"] == "unchanged")
    assert "document information was rewritten" in detail
    assert field.lstrip("/") in detail.replace("XMP metadata", "XMP"), detail
    assert checks(doc)["intact"] == (True, "intact_yes")
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       capsys=capsys)  # Vietnamese by default
    assert code == 1 and "thông tin tài liệu đã bị ghi lại sau khi ký" in out, out


def test_a_certificate_expired_at_signing_time_fails(world: World,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    # secops refuses to sign with it (below); another program might not: sign without checks
    with open_key(world.signing("expired")) as key:
        data = pades.sign_bytes(
            world.files["unsigned"].read_bytes(), key.signer, "test", pades.DEFAULT_BOX,
            HttpTimeStamper(world.tsa.url, 10), reason="test", name="test")
    path = world.write("expired.pdf", data)
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", "--lang", "en", capsys=capsys)
    doc = json.loads(out)
    assert code == 1 and checks(doc)["validity"] == (False, "validity_expired"), out
    assert checks(doc)["chain"][0] and checks(doc)["timestamp"][0]   # only the time is wrong
    assert doc["signatures"][0]["time_source"] == "timestamp"


def test_a_signature_outside_the_configured_chain_fails(world: World,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    with open_key(world.signing("foreign", chain=[str(world.files["other_root"])])) as key:
        data = pades.sign_bytes(world.files["unsigned"].read_bytes(), key.signer, "test",
                                pades.DEFAULT_BOX, None, reason="test", name="test")
    path = world.write("foreign.pdf", data)
    code, out, _ = cli("report", "verify", str(path), "--trust", str(world.files["root"]),
                       "--json", capsys=capsys)
    doc = json.loads(out)
    assert code == 1 and checks(doc)["chain"] == (False, "chain_no"), out
    assert checks(doc)["intact"][0]
    assert "Certificate is Trusted" not in pdfsig(world, path)
    # and the genuine one against the foreign root: not trusted either
    good = world.write("good-vs-foreign.pdf", world.signed_bt)
    code, out, _ = cli("report", "verify", str(good), "--trust",
                       str(world.files["other_root"]), "--json", capsys=capsys)
    assert code == 1 and checks(json.loads(out))["chain"] == (False, "chain_no")


# -- what secops refuses before signing (exit 3, nothing signed) ------------------------------

@pytest.mark.parametrize(("cert", "message"), [
    ("expired", "has expired"), ("early", "is not valid yet"),
    ("encrypt_only", "neither digitalSignature nor nonRepudiation")])
def test_a_certificate_that_may_not_sign_now_is_refused(world: World, cert: str,
                                                        message: str) -> None:
    with pytest.raises(SigningError, match=message) as e:
        pades.sign_pdf(world.files["unsigned"].read_bytes(), world.signing(cert), OFFICE, "vi")
    assert e.value.exit_code == 3


def test_a_certificate_outside_the_configured_chain_is_refused(world: World) -> None:
    with pytest.raises(SigningError, match="does not chain to a configured trust root"):
        pades.sign_pdf(world.files["unsigned"].read_bytes(), world.signing("foreign"),
                       OFFICE, "vi")


def test_a_wrong_pin_is_refused_and_never_shown(world: World) -> None:
    wrong = world.root / "wrong-pin"
    wrong.write_text("999999\n")
    wrong.chmod(0o600)
    with pytest.raises(SigningError, match="PIN was refused") as e:
        pades.sign_pdf(world.files["unsigned"].read_bytes(),
                       world.signing(pin_file=str(wrong)), OFFICE, "vi")
    assert "999999" not in str(e.value) and pki.USER_PIN not in str(e.value)


def test_a_pin_file_others_can_read_is_refused(world: World) -> None:
    loose = world.root / "loose-pin"
    loose.write_text(pki.USER_PIN)
    loose.chmod(0o644)
    with pytest.raises(Exception, match="readable by others"):
        pades.sign_pdf(world.files["unsigned"].read_bytes(),
                       world.signing(pin_file=str(loose)), OFFICE, "vi")


def test_the_pin_from_a_systemd_credential(world: World, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "token-pin").write_text(pki.USER_PIN)
    (creds / "token-pin").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    signed = pades.sign_pdf(world.files["unsigned"].read_bytes(),
                            world.signing(pin_file=None, pin_credential="token-pin",
                                          tsa_url=None), OFFICE, "en")
    assert signed.level == "B-B"
    assert verify_pdf(world.write("cred.pdf", signed.data), [world.ca.cert]).ok


@pytest.mark.parametrize(("changes", "message"), [
    ({"token_label": "the-office-token"}, "is not present"),
    ({"pkcs11_module": "/usr/lib/no-such-vendor/libpkcs11.so"}, "no such file"),
    ({"key_label": "no-such-key"}, "no key or certificate labelled")])
def test_the_token_removed(world: World, changes: dict[str, str], message: str) -> None:
    with pytest.raises(SigningError, match=message) as e:
        pades.sign_pdf(world.files["unsigned"].read_bytes(), world.signing(**changes),
                       OFFICE, "vi")
    assert e.value.exit_code == 3


def test_an_unreachable_tsa_signs_nothing(world: World) -> None:
    from integration.servers import free_port

    with pytest.raises(SigningError, match="cannot be reached"):
        pades.sign_pdf(world.files["unsigned"].read_bytes(),
                       world.signing(tsa_url=f"http://127.0.0.1:{free_port()}/tsa"),
                       OFFICE, "vi")


def test_a_tsa_that_answers_a_byte_at_a_time_is_given_up_at_its_deadline(
        world: World) -> None:
    """Each read gets a byte well within the timeout, the answer never ends: the timeout
    bounds the whole exchange (2 s here), and nothing is signed."""
    drip = pki.DripServer(every=0.3)
    try:
        start = time.monotonic()
        with pytest.raises(SigningError, match="did not answer within 2 s"):
            pades.sign_pdf(world.files["unsigned"].read_bytes(),
                           world.signing(tsa_url=drip.url, tsa_timeout_seconds=2.0),
                           OFFICE, "vi")
        # generous for a loaded machine; without the deadline it would hold for ever
        assert time.monotonic() - start < 60
    finally:
        drip.stop()


def test_a_certificate_that_is_not_the_token_key_s_signs_nothing(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """signing.certificate still names the old certificate after the token was renewed: a
    valid certificate, from the office's CA, for another key. Its twin, the token's own
    certificate, signs (every test above)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = pki.utcnow()
    stale = pki.write_pem(tmp_path / "old-token.pem", world.ca.issue(
        other.public_key(), pki.name("Nguyễn Văn Thắng"), not_before=now - pki.DAY,
        not_after=now + 365 * pki.DAY))
    config = config_with(tmp_path, world.signing(certificate=str(stale)))
    json_path, state = drill_json(tmp_path)
    before = sorted(p.name for p in state.reports.iterdir())
    code, _, err = cli("--config", str(config), "report", "drill", str(json_path),
                       capsys=capsys)
    assert code == 3, err
    assert "does not verify with the certificate" in err and "nothing was signed" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in state.reports.iterdir()) == before  # nothing written


def test_a_pkcs12_file_for_an_office_without_a_token(world: World, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = pki.utcnow()
    cert = world.ca.issue(key.public_key(), pki.name("Trần Thị Lan"),
                          not_before=now - pki.DAY, not_after=now + 30 * pki.DAY)
    p12 = tmp_path / "office.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"office", key, cert, [world.ca.cert],
        serialization.BestAvailableEncryption(b"mat-khau-p12")))
    password = tmp_path / "p12-password"
    password.write_text("mat-khau-p12\n")
    password.chmod(0o600)
    sg = Signing(pkcs12=str(p12), pkcs12_password_file=str(password),
                 trust_roots=[str(world.files["root"])], tsa_url=world.tsa.url)
    signed = pades.sign_pdf(world.files["unsigned"].read_bytes(), sg, OFFICE, "vi")
    assert signed.level == "B-T" and signed.signer.name == "Trần Thị Lan"
    result = verify_pdf(world.write("p12.pdf", signed.data), [world.ca.cert])
    assert result.ok, result.as_json("en")
    password.write_text("sai-mat-khau\n")
    with pytest.raises(SigningError, match="does not open it"):
        pades.sign_pdf(world.files["unsigned"].read_bytes(), sg, OFFICE, "vi")


# -- B-LT: the chain's revocation data fetched, checked and embedded ---------------------------

@dataclass
class Revo:
    """Certificates for the token's key that name a CRL distribution point: served by the
    loopback ``CrlServer`` (an intermediate CA under the test root, each CA's CRL signed by
    it), or unreachable, or answering badly."""

    world: World
    crls: pki.CrlServer
    serials: dict[str, str]             # name -> serial (hex, as the messages say it)
    revoked_at: str                     # the revocation time, as the messages say it
    signed_lt: pades.Signed             # the untouched B-LT file

    def signing(self, cert: str, **changes: Any) -> Signing:
        return chain_signing(self.world, cert, **changes)


def chain_signing(world: World, cert: str, **changes: Any) -> Signing:
    """``world.signing`` for a certificate the intermediate CA issued."""
    chain = [str(world.files["sub"]), str(world.files["root"])]
    return world.signing(cert, **{"chain": chain, **changes})


@pytest.fixture(scope="module")
def revo(world: World) -> Iterator[Revo]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from integration.servers import free_port

    crls = pki.CrlServer()
    try:
        now = pki.utcnow()
        root_url = crls.publish("root", world.ca)

        def sub_ca(cn: str) -> pki.Ca:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return pki.Ca(key, world.ca.issue(
                key.public_key(), pki.name(cn, org="Ban Cơ yếu Chính phủ (test)"),
                not_before=now - 30 * pki.DAY, not_after=now + 3650 * pki.DAY,
                signing=False, ca=True, crl_url=root_url))

        sub, bad_sub = sub_ca("CA cấp dưới thử nghiệm"), sub_ca("CA cấp dưới bị thu hồi")
        sub_url, bad_url = crls.publish("sub", sub), crls.publish("bad-sub", bad_sub)
        subject = pki.name("Nguyễn Văn Thắng")

        def leaf(issuer: pki.Ca, url: str) -> x509.Certificate:
            return issuer.issue(world.public, subject, not_before=now - pki.DAY,
                                not_after=now + 365 * pki.DAY, crl_url=url)

        def ocsp_leaf(issuer: pki.Ca, url: str) -> x509.Certificate:
            return issuer.issue(world.public, subject, not_before=now - pki.DAY,
                                not_after=now + 365 * pki.DAY, ocsp_url=url)

        certs = {"lt": leaf(sub, sub_url), "revoked": leaf(sub, sub_url),
                 "ocsp": ocsp_leaf(sub, crls.ocsp_url("sub")),
                 "ocsp_revoked": ocsp_leaf(sub, crls.ocsp_url("sub")),
                 "under_revoked_ca": leaf(bad_sub, bad_url),
                 "crl_down": leaf(sub, f"http://127.0.0.1:{free_port()}/sub.crl"),
                 "crl_garbage": leaf(sub, crls.break_("garbage", "garbage")),
                 "crl_hang": leaf(sub, crls.break_("hang", "hang"))}
        revoked_at = now - 30 * pki.MINUTE
        crls.revoke("sub", certs["revoked"], revoked_at)
        crls.revoke("sub", certs["ocsp_revoked"], revoked_at)
        crls.revoke("root", bad_sub.cert, revoked_at)
        for k, c in certs.items():
            world.files[k] = pki.write_pem(world.root / f"{k}.pem", c)
        world.files["sub"] = pki.write_pem(world.root / "sub.pem", sub.cert)
        world.files["bad_sub"] = pki.write_pem(world.root / "bad-sub.pem", bad_sub.cert)
        serials = {k: f"{c.serial_number:X}" for k, c in certs.items()}
        serials["bad_sub"] = f"{bad_sub.cert.serial_number:X}"
        signed = pades.sign_pdf(world.files["unsigned"].read_bytes(),
                                chain_signing(world, "lt"), OFFICE, "vi")
        yield Revo(world, crls, serials, revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC"), signed)
    finally:
        crls.stop()


def dss_contents(data: bytes) -> tuple[int, int]:
    """(CRLs, OCSP responses) in the file's document security store."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import DocumentSecurityStore

    dss = DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(data)))
    return len(dss.crls), len(dss.ocsps)


def test_a_b_lt_report_passes_pyhanko_and_pdfsig_offline(
        revo: Revo, capsys: pytest.CaptureFixture[str]) -> None:
    signed = revo.signed_lt
    assert (signed.level, signed.revocation, signed.warning) == ("B-LT", "embedded", None)
    assert "PAdES B-LT (có dấu thời gian và dữ liệu thu hồi)" in box_text(signed.data)
    assert dss_contents(signed.data) == (2, 0)    # the root's CRL (the CA) and the CA's
    path = revo.world.write("blt.pdf", signed.data)
    fetched = revo.crls.total_requests()
    code, out, _ = cli("report", "verify", str(path), "--trust",
                       str(revo.world.files["root"]), "--json", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"], out
    assert doc["signatures"][0]["level"] == "B-LT"
    assert doc["signatures"][0]["timestamp"]["ok"]
    assert all(ok for ok, _ in checks(doc).values())
    assert checks(doc)["unchanged"] == (True, "unchanged_harmless")   # the DSS update
    assert revo.crls.total_requests() == fetched        # verified offline: nothing fetched
    code, out, _ = cli("report", "verify", str(path), "--trust",
                       str(revo.world.files["root"]), "--lang", "en", capsys=capsys)
    assert code == 0 and "PAdES B-LT (timestamped, revocation data embedded)" in out
    report = pdfsig(revo.world, path)
    assert "Signature is Valid" in report and "Certificate is Trusted" in report, report


def test_a_certificate_with_an_ocsp_responder_makes_a_b_lt_and_a_revoked_one_nothing(
        revo: Revo, capsys: pytest.CaptureFixture[str]) -> None:
    """The signer's certificate names an OCSP responder (no CRL), its CA a CRL: both kinds
    of data embedded, verified offline by pyHanko and pdfsig. Its twin: the same responder
    says the other certificate is revoked, and nothing is signed."""
    signed = pades.sign_pdf(revo.world.files["unsigned"].read_bytes(),
                            revo.signing("ocsp"), OFFICE, "vi")
    assert (signed.level, signed.revocation) == ("B-LT", "embedded")
    crls, ocsps = dss_contents(signed.data)
    assert ocsps >= 1 and crls >= 1, (crls, ocsps)
    path = revo.world.write("blt-ocsp.pdf", signed.data)
    fetched = revo.crls.total_requests()
    code, out, _ = cli("report", "verify", str(path), "--trust",
                       str(revo.world.files["root"]), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["signatures"][0]["level"] == "B-LT", out
    assert revo.crls.total_requests() == fetched  # offline
    assert "Signature is Valid" in pdfsig(revo.world, path)
    with pytest.raises(SigningError, match=f"serial {revo.serials['ocsp_revoked']}.*revoked"):
        pades.sign_pdf(revo.world.files["unsigned"].read_bytes(),
                       revo.signing("ocsp_revoked"), OFFICE, "vi")


@pytest.mark.parametrize("tsa_crl", ["published", "down"])
def test_the_tsa_s_revocation_data_is_embedded_too_or_there_is_no_b_lt(
        revo: Revo, tsa_crl: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The TSA's own certificate names a CRL: B-LT embeds that data as well (verify: B-LT,
    offline); when it cannot be had, the report is signed at B-T (box and result alike),
    with the signer's revocation data, and says why; verify calls it B-T."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from integration.servers import free_port

    # the TSA's own CA, under the office's root: the root's CRL (embedded for the signer's
    # CA) answers for it, only its own CRL for the TSA's certificate
    now, key = pki.utcnow(), rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_ca = pki.Ca(key, revo.world.ca.issue(
        key.public_key(), pki.name("CA dấu thời gian thử nghiệm"), not_before=now - pki.DAY,
        not_after=now + 3650 * pki.DAY, signing=False, ca=True,
        crl_url=revo.crls.url("root")))
    url = revo.crls.publish(f"tsa-ca-{tsa_crl}", tsa_ca) if tsa_crl == "published" else \
        f"http://127.0.0.1:{free_port()}/tsa-ca.crl"
    tsa = pki.Tsa(tsa_ca, now, crl_url=url)
    try:
        signed = pades.sign_pdf(revo.world.files["unsigned"].read_bytes(),
                                revo.signing("lt", tsa_url=tsa.url), OFFICE, "en")
    finally:
        tsa.stop()
    level = "B-LT" if tsa_crl == "published" else "B-T"
    assert (signed.level, signed.revocation) == (level, "embedded")
    if tsa_crl == "down":
        assert signed.warning is not None and "time-stamping service's certificate" in \
            signed.warning, signed.warning
    else:
        assert signed.warning is None
    path = revo.world.write(f"tsa-crl-{tsa_crl}.pdf", signed.data)
    fetched = revo.crls.total_requests()
    code, out, _ = cli("report", "verify", str(path), "--trust",
                       str(revo.world.files["root"]), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["signatures"][0]["level"] == level, out
    assert revo.crls.total_requests() == fetched  # offline
    assert "Signature is Valid" in pdfsig(revo.world, path)


def test_revocation_data_without_a_timestamp_is_still_b_b(revo: Revo) -> None:
    signed = pades.sign_pdf(revo.world.files["unsigned"].read_bytes(),
                            revo.signing("lt", tsa_url=None), OFFICE, "en")
    assert (signed.level, signed.revocation, signed.warning) == ("B-B", "embedded", None)
    result = verify_pdf(revo.world.write("bb-crl.pdf", signed.data), [revo.world.ca.cert])
    assert result.ok and result.signatures[0].level == "B-B", result.as_json("en")


def test_a_certificate_naming_no_revocation_source_fetches_nothing(revo: Revo) -> None:
    fetched = revo.crls.total_requests()
    signed = pades.sign_pdf(revo.world.files["unsigned"].read_bytes(), revo.world.signing(),
                            OFFICE, "vi")
    assert (signed.level, signed.revocation, signed.warning) == ("B-T", "not_named", None)
    assert revo.crls.total_requests() == fetched


def drill_result() -> dict[str, Any]:
    """A passed drill's result, as ``secops drill`` records it (a fresh copy each time)."""
    return {"ok": True, "snapshot_id": "a1b2c3d4" * 8, "target": "local",
            "files_checked": 12, "bytes": 5000, "mismatched": [], "missing": [],
            "problems": [], "rto_s": 4.5, "rpo_s": 2.5, "time": "2026-03-15T03:00:00Z",
            "snapshot_time": "2026-03-15T02:59:57Z", "office": "tan-ky",
            "office_name": OFFICE, "manifest_signed_by": "3f9a0c1b2d4e5f60", "warnings": []}


def drill_state(tmp_path: Path) -> Any:
    """A state folder with the office's Ed25519 key, for a drill report."""
    from secops.keys.store import ensure_ed25519
    from secops.layout import StateDir

    state = StateDir(tmp_path / "state")
    ensure_ed25519(state.ed25519_key, state.ed25519_pub)
    return state


def drill_json(tmp_path: Path) -> tuple[Path, Any]:
    """A drill report's signed JSON (printed unsigned), and the state it is in."""
    from secops.reports import drill_report

    state = drill_state(tmp_path)
    files = drill_report.write_report(state, drill_result(), "vi", "20260315T030000Z",
                                      signing=None)
    return Path(files["json"]), state


def config_with(tmp_path: Path, sg: Signing, language: str = "vi") -> Path:
    config = tmp_path / "secops.toml"
    chain = ", ".join(f'"{c}"' for c in sg.chain)
    config.write_text(
        f'[office]\nname = "{OFFICE}"\ncode = "tan-ky"\nlanguage = "{language}"\n'
        '[paths]\nstate_dir = "state"\nwatch = ["data"]\n[backup]\n[[backup.targets]]\n'
        'name = "local"\nrepository = "repo"\n[signing]\n'
        f'pkcs11_module = "{sg.pkcs11_module}"\ntoken_label = "{sg.token_label}"\n'
        f'key_label = "{sg.key_label}"\npin_file = "{sg.pin_file}"\n'
        f'certificate = "{sg.certificate}"\nchain = [{chain}]\n'
        f'revocation_timeout_seconds = {sg.revocation_timeout_seconds}\n'
        + (f'tsa_url = "{sg.tsa_url}"\n' if sg.tsa_url else ""), encoding="utf-8")
    return config


def test_a_revoked_certificate_signs_nothing_and_its_untouched_twin_signs(
        revo: Revo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path, state = drill_json(tmp_path)
    before = sorted(p.name for p in state.reports.iterdir())
    config = config_with(tmp_path, revo.signing("revoked"))
    code, out, err = cli("--config", str(config), "report", "drill", str(json_path),
                         "--json", capsys=capsys)
    assert code == 3 and out == "", err
    assert f"the signing certificate (serial {revo.serials['revoked']}) was revoked" in err
    assert f"at {revo.revoked_at}" in err and "nothing was signed" in err, err
    assert sorted(p.name for p in state.reports.iterdir()) == before   # nothing written
    # the twin: the same CA, the same CRL, a certificate it does not list
    config = config_with(tmp_path, revo.signing("lt"))
    code, out, err = cli("--config", str(config), "report", "drill", str(json_path),
                         "--json", capsys=capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pades"]["level"] == "B-LT" and doc["pades"]["revocation"] == "embedded"
    assert "warning" not in doc["pades"] and "warning" not in err
    result = verify_pdf(Path(doc["pdf"]), [revo.world.ca.cert])
    assert result.ok and result.signatures[0].level == "B-LT", result.as_json("en")


def test_a_certificate_under_a_revoked_ca_signs_nothing(revo: Revo) -> None:
    sg = revo.signing("under_revoked_ca", chain=[str(revo.world.files["bad_sub"]),
                                                 str(revo.world.files["root"])])
    with pytest.raises(SigningError) as e:
        pades.sign_pdf(revo.world.files["unsigned"].read_bytes(), sg, OFFICE, "vi")
    message = str(e.value)
    assert e.value.exit_code == 3
    assert f"(serial {revo.serials['bad_sub']}) in the signing certificate's chain was " \
           f"revoked by its CA at {revo.revoked_at}" in message, message


@pytest.mark.parametrize("cert", ["crl_down", "crl_garbage", "crl_hang"])
def test_revocation_data_that_cannot_be_had_signs_at_b_t_and_says_why(
        revo: Revo, cert: str) -> None:
    import time

    timeout = 2.0
    started = time.monotonic()
    signed = pades.sign_pdf(revo.world.files["unsigned"].read_bytes(),
                            revo.signing(cert, revocation_timeout_seconds=timeout),
                            OFFICE, "vi")
    assert time.monotonic() - started < 60      # the deadline holds (a hang: ~2 s)
    assert (signed.level, signed.revocation) == ("B-T", "unavailable")
    url = x509.load_pem_x509_certificate(revo.world.files[cert].read_bytes()).extensions \
        .get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    assert signed.warning is not None
    assert signed.warning.startswith("không nhúng được dữ liệu thu hồi chứng thư (CRL/OCSP)")
    assert url in signed.warning and "PAdES B-T (có dấu thời gian)" in signed.warning
    assert "root.crl" not in signed.warning    # the CA's own check went well: not named
    if cert == "crl_hang":
        assert f"{url} không trả lời trong {timeout:g} giây" in signed.warning, signed.warning
    else:
        assert f"không nhận được dữ liệu thu hồi hợp lệ từ {url}" in signed.warning
    assert "PAdES B-T (có dấu thời gian)" in box_text(signed.data)
    result = verify_pdf(revo.world.write(f"{cert}.pdf", signed.data), [revo.world.ca.cert])
    assert result.ok and result.signatures[0].level == "B-T", result.as_json("en")


def test_the_cli_says_why_a_report_is_not_b_lt(revo: Revo, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    json_path, _ = drill_json(tmp_path)
    config = config_with(tmp_path, revo.signing("crl_down", tsa_url=None), language="en")
    code, out, err = cli("--config", str(config), "report", "drill", str(json_path),
                         "--lang", "en", capsys=capsys)
    assert code == 0, err
    assert "secops: warning: PAdES: no revocation data (CRL/OCSP) could be embedded" in err
    assert "the report is signed at PAdES B-B (no timestamp), without revocation data" in err
    assert "PAdES      B-B" in out
    code, out, err = cli("--config", str(config), "report", "drill", str(json_path),
                         "--lang", "vi", "--json", capsys=capsys)
    doc = json.loads(out)
    assert code == 0 and doc["pades"]["revocation"] == "unavailable"
    assert doc["pades"]["warning"].startswith("không nhúng được dữ liệu thu hồi")
    assert "secops: warning: PAdES: không nhúng được" in err


def test_a_b_lt_file_with_one_byte_changed_fails(revo: Revo,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(revo.signed_lt.data)
    at = data.index(b"/Creator")              # inside the first signed range
    data[at + 12] ^= 0x01
    path = revo.world.write("blt-byte.pdf", bytes(data))
    code, out, _ = cli("report", "verify", str(path), "--trust",
                       str(revo.world.files["root"]), "--json", capsys=capsys)
    assert code == 1 and checks(json.loads(out))["intact"] == (False, "intact_no"), out
    assert "Digest Mismatch" in pdfsig(revo.world, path)


def test_damaged_revocation_data_never_makes_a_b_lt(revo: Revo,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import DocumentSecurityStore

    data = revo.signed_lt.data
    dss = DocumentSecurityStore.read_dss(PdfFileReader(BytesIO(data)))
    for ref in dss.crls:                       # a byte of each CRL's signature
        raw = ref.get_object().data
        at = data.index(raw) + len(raw) - 20
        damaged = bytearray(data)
        damaged[at] ^= 0x01
        path = revo.world.write("blt-crl-byte.pdf", bytes(damaged))
        code, out, _ = cli("report", "verify", str(path), "--trust",
                           str(revo.world.files["root"]), "--json", capsys=capsys)
        [sig] = json.loads(out)["signatures"]
        # validation data, not what was signed: not used, and the file is no B-LT
        assert code == 0 and sig["level"] == "B-T", out
        assert checks(json.loads(out))["intact"] == (True, "intact_yes")


def test_a_dss_that_does_not_decode_is_no_b_lt_and_no_crash(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(BytesIO(world.signed_bt))
    junk = generic.StreamObject({generic.NameObject("/Filter"):
                                 generic.NameObject("/FlateDecode")},
                                stream_data=b"\x78\x9c not deflate at all")
    w.root[generic.NameObject("/DSS")] = w.add_object(generic.DictionaryObject({
        generic.NameObject("/CRLs"): generic.ArrayObject([w.add_object(junk)])}))
    w.update_root()
    out = BytesIO()
    w.write(out)
    path = world.write("junk-dss.pdf", out.getvalue())
    code, out_json, _ = cli("report", "verify", str(path), "--trust",
                            str(world.files["root"]), "--json", capsys=capsys)
    doc = json.loads(out_json)
    assert checks(doc)["intact"] == (True, "intact_yes"), out_json
    assert doc["signatures"][0]["level"] == "B-T", out_json
    assert code == 0 and doc["ok"], out_json   # validation data only: no content changed


def test_a_revoked_signer_with_its_crl_embedded_fails_offline(
        revo: Revo, capsys: pytest.CaptureFixture[str]) -> None:
    import urllib.request

    from asn1crypto import crl as asn1_crl
    from pyhanko.sign.validation import DocumentSecurityStore

    # secops refuses to sign with it; another program might not: sign without checks, then
    # embed the CA's CRL that lists it (revoked half an hour before signing)
    with open_key(revo.signing("revoked")) as key:
        data = pades.sign_bytes(
            revo.world.files["unsigned"].read_bytes(), key.signer, "test", pades.DEFAULT_BOX,
            HttpTimeStamper(revo.world.tsa.url, 10), reason="test", name="test")
    with urllib.request.urlopen(revo.crls.url("sub"), timeout=30) as resp:  # noqa: S310
        listed = asn1_crl.CertificateList.load(resp.read())
    out = BytesIO(data)
    DocumentSecurityStore.add_dss(out, sig_contents=None, crls=[listed], force_write=True)
    path = revo.world.write("revoked-signer.pdf", out.getvalue())
    code, out_json, _ = cli("report", "verify", str(path), "--trust",
                            str(revo.world.files["root"]), "--json", capsys=capsys)
    doc = json.loads(out_json)
    assert code == 1 and checks(doc)["chain"] == (False, "chain_revoked"), out_json
    assert doc["signatures"][0]["level"] != "B-LT"
    # without the CRL (offline, nothing fetched) nothing shows it: the plain file passes
    plain = revo.world.write("revoked-signer-plain.pdf", data)
    assert verify_pdf(plain, [revo.world.ca.cert]).ok


# -- bad input to verify: exit 2, a clear message ----------------------------------------------

def test_bad_input_is_exit_2_without_a_traceback(world: World, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.pdf"
    text.write_text("biên bản kiểm phiếu\n")
    for target, message in ((tmp_path / "missing.pdf", "no such file"),
                            (text, "not a PDF file"),
                            (world.files["unsigned"], "carries no digital signature")):
        code, out, err = cli("report", "verify", str(target), "--trust",
                             str(world.files["root"]), "--json", capsys=capsys)
        assert code == 2 and message in err and out == "", (target, err)
    code, _, err = cli("report", "verify", str(world.files["unsigned"]), "--trust",
                       str(text), capsys=capsys)
    assert code == 2 and "not a certificate" in err


# -- the reports: signed after rendering when [signing] is set ---------------------------------

def test_the_drill_report_pdf_is_signed_and_a_refusal_writes_nothing(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from secops.reports import drill_report

    state = drill_state(tmp_path)
    report = drill_result()
    files = drill_report.write_report(state, report, "vi", "20260315T030000Z",
                                      signing=world.signing())
    assert files["pades"]["level"] == "B-T", files
    assert verify_pdf(Path(files["pdf"]), [world.ca.cert]).ok
    # the Ed25519 signature is over the PAdES-signed bytes
    assert run(["report", "verify-drill", files["pdf"], "--public-key",
                str(state.ed25519_pub)]) == 0
    # a wrong PIN: exit 3 through the CLI, and no new printing of any kind
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("000000")
    wrong.chmod(0o600)
    config = tmp_path / "secops.toml"
    config.write_text(
        f'[office]\nname = "{OFFICE}"\ncode = "tan-ky"\n[paths]\nstate_dir = "state"\n'
        'watch = ["data"]\n[backup]\n[[backup.targets]]\nname = "local"\n'
        'repository = "repo"\n[signing]\n'
        f'pkcs11_module = "{world.module}"\ntoken_label = "{pki.TOKEN}"\n'
        f'key_label = "{pki.KEY}"\npin_file = "{wrong}"\n'
        f'certificate = "{world.files["good"]}"\nchain = ["{world.files["root"]}"]\n',
        encoding="utf-8")
    before = sorted(p.name for p in state.reports.iterdir())
    code, _, err = cli("--config", str(config), "report", "drill", files["json"],
                       capsys=capsys)
    assert code == 3 and "PIN was refused" in err and "000000" not in err, err
    assert sorted(p.name for p in state.reports.iterdir()) == before


@pytest.mark.requires_gpg
def test_the_weekly_report_pdf_is_signed(world: World, tmp_path: Path) -> None:
    from secops.clock import SystemClock
    from secops.config.loader import parse_config
    from secops.keys.gpg import Gpg
    from secops.layout import StateDir
    from secops.reports.weekly import write_weekly

    raw: dict[str, Any] = {
        "office": {"name": OFFICE, "code": "tan-ky"},
        "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(tmp_path / "data")]},
        "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "repo")}]},
        "logs": {"journald": "off"},
        "signing": {"pkcs11_module": world.module, "token_label": pki.TOKEN,
                    "key_label": pki.KEY, "pin_file": str(world.files["pin"]),
                    "certificate": str(world.files["good"]),
                    "chain": [str(world.files["root"])], "tsa_url": world.tsa.url}}
    cfg = parse_config(raw, tmp_path / "secops.toml")
    state = StateDir(Path(cfg.paths.state_dir))
    gpg = Gpg(state.gnupg)
    gpg.generate_signing_key(f"{OFFICE} (secops)", "secops@tan-ky.invalid")
    try:
        out = write_weekly(cfg, None, "vi", SystemClock())
        assert out["pades"]["level"] == "B-T"
        pdf = Path(out["pdf"])
        assert verify_pdf(pdf, [world.ca.cert]).ok
        assert gpg.verify_detached(Path(out["signature"]).read_bytes(), pdf).valid
        assert "Signature is Valid" in pdfsig(world, pdf)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(state.gnupg), "--kill", "all"],
                       capture_output=True, timeout=30, check=False)


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
@pytest.mark.parametrize(("cert", "level", "revocation"), [
    ("good", "B-T", "not_named"), ("lt", "B-LT", "embedded"), ("crl_down", "B-T", "unavailable")])
def test_the_pdf_inside_the_incident_bundle_is_the_signed_one(
        revo: Revo, tmp_path: Path, cert: str, level: str, revocation: str) -> None:
    """The bundle command says how the PDF inside is signed, and why not B-LT when the
    revocation data could not be had (as the report commands do)."""
    import os
    import tarfile

    from integration.office import office_with_incident

    world = revo.world
    chain = [world.files["root"]] if cert == "good" else [world.files["sub"],
                                                          world.files["root"]]
    office, incident = office_with_incident(tmp_path / "office")
    try:
        with office.config.open("a", encoding="utf-8") as f:
            f.write(f'\n[signing]\npkcs11_module = "{world.module}"\n'
                    f'token_label = "{pki.TOKEN}"\nkey_label = "{pki.KEY}"\n'
                    f'pin_file = "{world.files["pin"]}"\n'
                    f'certificate = "{world.files[cert]}"\n'
                    f'chain = [{", ".join(f"{str(c)!r}" for c in chain)}]\n'
                    f'tsa_url = "{world.tsa.url}"\n')
        done = office.run("report", "incident", incident, "--json",
                          env={"SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"]})
        assert done.code == 0, done.err
        said = done.json()["pades"]
        assert (said["level"], said["revocation"]) == (level, revocation), said
        assert ("secops: warning: PAdES: " in done.err) == (revocation == "unavailable")
        with tarfile.open(done.json()["bundle"]) as tar:
            [member] = [m for m in tar.getmembers() if m.name.endswith("/report.pdf")]
            extracted = tar.extractfile(member)
            assert extracted is not None
            pdf = world.write(f"bundle-report-{cert}.pdf", extracted.read())
        result = verify_pdf(pdf, [world.ca.cert])
        assert result.ok and result.signatures[0].level == level, result.as_json("en")
        assert "Signature is Valid" in pdfsig(world, pdf)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(office.state / "gnupg"), "--kill", "all"],
                       capture_output=True, timeout=30, check=False)
