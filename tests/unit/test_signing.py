"""The pure parts of PAdES signing: the [signing] section (either a token or a PKCS#12 file,
never half of one, unknown keys refused), the checks before signing, the signature box's
Vietnamese, and the verification result's JSON and words."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from minimal_config import MINIMAL_TOML

from secops.config.loader import load_config
from secops.errors import ConfigError
from secops.signing import policy, words
from secops.signing.outcome import Check, SignatureResult, Verification

NOW = datetime(2026, 3, 16, 0, 0, 5, tzinfo=UTC)
TOKEN = """
[signing]
pkcs11_module = "/usr/lib/x86_64-linux-gnu/libvnpt-ca.so"
token_label = "VNPT-CA"
key_label = "UBND xa Tan Ky"
pin_file = "token.pin"
certificate = "certs/office.pem"
chain = ["certs/ca.pem"]
trust_roots = ["certs/root.pem"]
tsa_url = "http://tsa.ca.gov.vn"
signer_title = "Chủ tịch"
"""


def load(tmp_path: Path, signing: str) -> object:
    path = tmp_path / "secops.toml"
    path.write_text(MINIMAL_TOML + signing, encoding="utf-8")
    return load_config(path)


def error_of(tmp_path: Path, signing: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, signing)
    return str(e.value)


def test_a_token_section_loads_with_paths_resolved(tmp_path: Path) -> None:
    cfg = load(tmp_path, TOKEN)
    sg = cfg.signing  # type: ignore[attr-defined]
    assert sg.pin_file == str(tmp_path / "token.pin")
    assert sg.chain == [str(tmp_path / "certs" / "ca.pem")]
    assert sg.trust_roots == [str(tmp_path / "certs" / "root.pem")]
    assert sg.pkcs11_module == "/usr/lib/x86_64-linux-gnu/libvnpt-ca.so"


def test_the_revocation_deadline_defaults_to_ten_seconds(tmp_path: Path) -> None:
    sg = load(tmp_path, TOKEN).signing  # type: ignore[attr-defined]
    assert sg.revocation_timeout_seconds == 10.0
    sg = load(tmp_path, TOKEN + "revocation_timeout_seconds = 2.5\n").signing  # type: ignore[attr-defined]
    assert sg.revocation_timeout_seconds == 2.5


def test_no_section_means_no_signing(tmp_path: Path) -> None:
    assert load(tmp_path, "").signing is None  # type: ignore[attr-defined]


def test_a_pkcs12_section_loads(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[signing]\npkcs12 = "office.p12"\n'
                         'pkcs12_password_file = "p12.pass"\n')
    assert cfg.signing.pkcs12 == str(tmp_path / "office.p12")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("section", "message"), [
    ('[signing]\npin = "123456"\n', "signing.pin: unknown key"),
    (TOKEN.replace('key_label = "UBND xa Tan Ky"\n', ""), "signing.key_label: required"),
    (TOKEN + 'pin_credential = "token-pin"\n', "exactly one of pin_file"),
    (TOKEN.replace('pin_file = "token.pin"\n', ""), "exactly one of pin_file"),
    (TOKEN + 'pkcs12 = "office.p12"\n', "use either the token or the PKCS#12 file"),
    ('[signing]\npkcs12 = "office.p12"\n', "signing.pkcs12_password_file: required"),
    (TOKEN.replace("http://tsa.ca.gov.vn", "tsa.ca.gov.vn"), "signing.tsa_url: must be"),
    (TOKEN.replace('pin_file = "token.pin"', 'pin_credential = "../etc/shadow"'),
     "signing.pin_credential"),
    (TOKEN + "revocation_timeout_seconds = 0\n", "signing.revocation_timeout_seconds"),
    (TOKEN + "revocation_timeout_seconds = 301\n", "signing.revocation_timeout_seconds"),
    (TOKEN + 'revocation_timeout_seconds = "10"\n', "signing.revocation_timeout_seconds"),
])
def test_a_bad_section_names_its_key(tmp_path: Path, section: str, message: str) -> None:
    text = error_of(tmp_path, section)
    assert message in text and "secops.toml" in text, text
    assert "123456" not in text


def cert(*, not_before: datetime, not_after: datetime, usage: str = "sign",
         cn: str = "Nguyễn Văn Thắng") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.TITLE, "Chủ tịch")])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(0x1A2B3C)
         .not_valid_before(not_before).not_valid_after(not_after))
    if usage != "none":
        b = b.add_extension(x509.KeyUsage(
            digital_signature=usage == "sign", content_commitment=usage == "nonrep",
            key_encipherment=usage == "encrypt", data_encipherment=False, key_agreement=False,
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True)
    return b.sign(key, hashes.SHA256())


def test_the_checks_before_signing() -> None:
    day = timedelta(days=1)
    good = cert(not_before=NOW - day, not_after=NOW + day)
    assert policy.problems_before_signing(good, NOW) == []
    assert policy.problems_before_signing(
        cert(not_before=NOW - day, not_after=NOW + day, usage="nonrep"), NOW) == []
    assert policy.problems_before_signing(   # no key usage extension: not restricted
        cert(not_before=NOW - day, not_after=NOW + day, usage="none"), NOW) == []
    [expired] = policy.problems_before_signing(
        cert(not_before=NOW - 2 * day, not_after=NOW - day), NOW)
    assert "has expired" in expired and "1A2B3C" in expired
    [early] = policy.problems_before_signing(
        cert(not_before=NOW + day, not_after=NOW + 2 * day), NOW)
    assert "not valid yet" in early
    [usage] = policy.problems_before_signing(
        cert(not_before=NOW - day, not_after=NOW + day, usage="encrypt"), NOW)
    assert "neither digitalSignature nor nonRepudiation" in usage


def test_the_revocation_sources_a_certificate_names() -> None:
    from cryptography.x509.oid import AuthorityInformationAccessOID as Aia

    day = timedelta(days=1)
    plain = cert(not_before=NOW - day, not_after=NOW + day)
    assert policy.revocation_urls(plain) == []
    key = ec.generate_private_key(ec.SECP256R1())
    uri = x509.UniformResourceIdentifier
    named = (x509.CertificateBuilder().subject_name(plain.subject).issuer_name(plain.issuer)
             .public_key(key.public_key()).serial_number(7)
             .not_valid_before(NOW - day).not_valid_after(NOW + day)
             .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                 full_name=[uri("http://crl.ca.gov.vn/ca.crl")], relative_name=None,
                 reasons=None, crl_issuer=None)]), critical=False)
             .add_extension(x509.AuthorityInformationAccess([
                 x509.AccessDescription(Aia.CA_ISSUERS, uri("http://ca.gov.vn/ca.cer")),
                 x509.AccessDescription(Aia.OCSP, uri("http://ocsp.ca.gov.vn"))]),
                 critical=False)
             .sign(key, hashes.SHA256()))
    assert policy.revocation_urls(named) == ["http://crl.ca.gov.vn/ca.crl",
                                             "http://ocsp.ca.gov.vn"]


def test_b_lt_needs_a_timestamp() -> None:
    assert policy.level_of(True, True) == "B-LT"
    assert policy.level_of(True, False) == "B-T"
    assert policy.level_of(False, True) == "B-B"


def test_why_there_is_no_revocation_data_in_both_languages() -> None:
    from secops.signing.revocation import Revocation

    assert Revocation().status == "not_named" and Revocation().warning("vi", "B-T") is None
    down = Revocation(("http://crl.ca.gov.vn/ca.crl",), problem=(
        "revinfo_why_timeout", {"urls": "http://crl.ca.gov.vn/ca.crl", "seconds": "10"}))
    assert down.status == "unavailable" and not down.embeddable
    assert down.warning("vi", "B-T") == (
        "không nhúng được dữ liệu thu hồi chứng thư (CRL/OCSP) vào chữ ký: "
        "http://crl.ca.gov.vn/ca.crl không trả lời trong 10 giây; báo cáo vẫn được ký, ở "
        "mức PAdES B-T (có dấu thời gian), không kèm dữ liệu thu hồi (không phải B-LT)")
    assert down.warning("en", "B-B") == (
        "no revocation data (CRL/OCSP) could be embedded in the signature: "
        "http://crl.ca.gov.vn/ca.crl did not answer within 10 s; the report is signed at "
        "PAdES B-B (no timestamp), without revocation data (not B-LT)")
    warning = down.warning("vi", "B-T") or ""
    assert warning == unicodedata.normalize("NFC", warning)   # precomposed Vietnamese


def test_the_box_is_vietnamese_with_precomposed_letters() -> None:
    decomposed = "Nguye\u0302\u0303n Va\u0306n Tha\u0306\u0301ng"    # as some keyboards type
    c = cert(not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=1),
             cn=decomposed)
    signer = policy.signer_of(c, None, "")
    assert signer.name == "Nguyễn Văn Thắng" and signer.title == "Chủ tịch"
    local = NOW.astimezone(timezone(timedelta(hours=7)))
    text = policy.box_text("UBND xã Tân Kỳ", signer, local, "B-T", "vi")
    assert text.splitlines() == [
        "Đã ký số bởi: UBND xã Tân Kỳ",
        "Người ký: Nguyễn Văn Thắng, Chủ tịch",
        "Thời gian ký: 16/03/2026 07:00:05 (UTC+07:00)",
        "Số hiệu chứng thư: 1A2B3C",
        "Mức chữ ký: PAdES B-T (có dấu thời gian)"]
    english = policy.box_text("UBND xã Tân Kỳ", policy.signer_of(c, "Tran Thi Lan", "Clerk"),
                              local, "B-B", "en")
    assert "Signer: Tran Thi Lan, Clerk" in english and "PAdES B-B (no timestamp)" in english


def test_both_languages_say_everything() -> None:
    assert words.same_keys()


def test_the_verification_json_shape() -> None:
    checks = (Check("intact", True, "intact_yes"),
              Check("unchanged", False, "unchanged_no", {"n": "1", "what": "a page"}),
              Check("chain", True, "chain_yes", {"root": "CA"}),
              Check("validity", True, "validity_yes", {"nb": "a", "na": "b", "when": "c",
                                                       "source": "@source_timestamp"}),
              Check("timestamp", True, "timestamp_none"))
    sig = SignatureResult(field="ChuKySo", level="B-B", signer={"name": "X", "serial": "1"},
                          signing_time="2026-03-16T00:00:05Z", time_source="claimed",
                          timestamp=None, checks=checks)
    v = Verification("r.pdf", (sig,))
    doc = v.as_json("en")
    assert not doc["ok"] and set(doc) == {"ok", "file", "language", "signatures"}
    [s] = doc["signatures"]
    assert set(s) == {"field", "ok", "level", "signer", "signing_time", "time_source",
                      "timestamp", "checks"}
    assert [c["name"] for c in s["checks"]] == ["intact", "unchanged", "chain", "validity",
                                                "timestamp"]
    assert "per the timestamp" in s["checks"][3]["detail"]
    assert "theo dấu thời gian" in v.as_json("vi")["signatures"][0]["checks"][3]["detail"]
    assert "Tài liệu không bị sửa sau khi ký" in v.verdict("vi")
    assert not Verification("r.pdf", ()).ok
