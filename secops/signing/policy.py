"""What must hold before the office signs, and what the signature box says (pure: values in,
values out; the certificate is a parsed ``cryptography`` object, the time is given).

A certificate may sign a report when it is valid at the signing time and its key usage
allows signatures (digitalSignature or nonRepudiation; a certificate without the extension
is not restricted, RFC 5280 4.2.1.3). The chain to a configured root is checked by the
adapter (``pades``), which has the validator; the revocation data the certificates name
(``revocation_urls``) is fetched by the adapter ``revocation``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from secops.signing.words import text

LEVELS = ("B-B", "B-T", "B-LT")


@dataclass(frozen=True)
class Signer:
    """Who signs, as the box and the JSON name them."""

    name: str            # the certificate's common name, or signing.signer_name
    title: str           # signing.signer_title ("Chủ tịch"), or the certificate's title
    organisation: str    # the certificate's O
    serial: str          # the certificate's serial number, hex, upper case


def subject_field(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return nfc(str(values[0].value)) if values else ""


def serial_hex(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:X}"


def nfc(value: str) -> str:
    """Vietnamese in precomposed form: one glyph per letter with its marks, as the fonts have
    them (a decomposed "ế" would print as e + two loose marks)."""
    return unicodedata.normalize("NFC", value)


def signer_of(cert: x509.Certificate, name: str | None, title: str) -> Signer:
    return Signer(name=nfc(name) if name else subject_field(cert, NameOID.COMMON_NAME),
                  title=nfc(title) or subject_field(cert, NameOID.TITLE),
                  organisation=subject_field(cert, NameOID.ORGANIZATION_NAME),
                  serial=serial_hex(cert))


def validity_problem(cert: x509.Certificate, when: datetime) -> str | None:
    """Why ``cert`` cannot sign at ``when`` (aware), or None."""
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    if when < nb:
        return (f"the signing certificate (serial {serial_hex(cert)}) is not valid yet: "
                f"valid from {nb.strftime(fmt)}")
    if when > na:
        return (f"the signing certificate (serial {serial_hex(cert)}) has expired: valid "
                f"until {na.strftime(fmt)}")
    return None


def key_usage_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert``'s key usage forbids signing documents, or None."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ku.digital_signature or ku.content_commitment:
        return None
    return (f"the certificate (serial {serial_hex(cert)}) may not sign documents: its key "
            "usage has neither digitalSignature nor nonRepudiation")


def problems_before_signing(cert: x509.Certificate, when: datetime) -> list[str]:
    return [p for p in (validity_problem(cert, when), key_usage_problem(cert)) if p]


def revocation_urls(cert: x509.Certificate) -> list[str]:
    """The CRL distribution points and OCSP responders (AIA) ``cert`` names, as URLs."""
    urls: list[str] = []
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        urls += [n.value for dp in dps for n in dp.full_name or ()
                 if isinstance(n, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        urls += [d.access_location.value for d in aia
                 if d.access_method == AuthorityInformationAccessOID.OCSP
                 and isinstance(d.access_location, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    return urls


def level_of(timestamped: bool, revocation_embedded: bool = False) -> str:
    """B-LT needs B-T: revocation data without a timestamp is still B-B."""
    if not timestamped:
        return "B-B"
    return "B-LT" if revocation_embedded else "B-T"


def box_text(office: str, signer: Signer, when_local: datetime, level: str, lang: str) -> str:
    """The visible signature box, one fact a line, in ``lang`` (Vietnamese by default)."""
    who = f"{signer.name}, {signer.title}" if signer.title else signer.name
    clock = when_local.strftime("%d/%m/%Y %H:%M:%S" if lang != "en" else "%Y-%m-%d %H:%M:%S")
    offset = when_local.strftime("%z")
    zone = f"UTC{offset[:3]}:{offset[3:]}" if offset else ""
    lines = [
        f"{text(lang, 'box_title')}: {nfc(office)}",
        f"{text(lang, 'box_signer')}: {who}",
        f"{text(lang, 'box_time')}: {clock} ({zone})" if zone else
        f"{text(lang, 'box_time')}: {clock}",
        f"{text(lang, 'box_serial')}: {signer.serial}",
        f"{text(lang, 'box_level')}: {text(lang, 'level_' + level)}",
    ]
    return "\n".join(nfc(line) for line in lines)
