"""Revocation data for PAdES B-LT (adapter: pyhanko-certvalidator's fetchers over aiohttp,
pyHanko's document security store).

When the signing certificate or a CA certificate of its chain names a CRL distribution
point or an OCSP responder (AIA), ``fetch`` gets the revocation data within
``signing.revocation_timeout_seconds`` (one deadline for the whole fetch, and for each
request) and checks it: the chain is validated now with the data fetched ("hard-fail": a
certificate that names a source must have good data from it).

- A certificate the data shows revoked is a ``SigningError`` (exit 3) naming its serial and
  the revocation time: nothing is signed.
- Data that cannot be had (the responder down, no answer in time, an answer that is not a
  CRL/OCSP response, or one that does not check out) is a value, not an error: the report
  is signed without it (B-T, or B-B without a TSA) and ``Revocation.warning`` says why.
- Certificates that name no source: nothing is fetched, nothing is said (B-T / B-B).

``embed`` writes the data that was checked (CRLs, OCSP responses, the chain's certificates)
into the signed PDF's DSS in an incremental update after the signature, as PAdES B-LT asks
(ETSI EN 319 142-1 5.4): validation data, which ``secops report verify`` reads offline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC
from io import BytesIO
from typing import Any

from cryptography import x509

from secops.errors import SigningError
from secops.signing import policy
from secops.signing.keys import to_asn1
from secops.signing.words import text

DETAIL_CHARS = 200


@dataclass(frozen=True)
class Revocation:
    """What ``fetch`` found: the sources named, and the checked data or why there is none."""

    urls: tuple[str, ...] = ()             # the CRL DPs and OCSP responders the chain names
    path: Any = None                       # the validated path (pyhanko_certvalidator)
    crls: tuple[Any, ...] = ()             # asn1crypto CertificateList
    ocsps: tuple[Any, ...] = ()            # asn1crypto OCSPResponse
    problem: tuple[str, dict[str, str]] | None = None   # a words key and its values

    @property
    def embeddable(self) -> bool:
        return self.path is not None and bool(self.crls or self.ocsps)

    @property
    def status(self) -> str:
        """``embedded``, ``unavailable`` (named, not had) or ``not_named``."""
        if self.embeddable:
            return "embedded"
        return "unavailable" if self.urls else "not_named"

    def warning(self, lang: str, level: str, *, tsa: bool = False) -> str | None:
        """Why the signature goes without revocation data (``tsa``: without the TSA's), in
        ``lang``; None when it has it or no certificate names a source."""
        if self.problem is None or self.embeddable:
            return None
        key, values = self.problem
        return text(lang, "revinfo_tsa" if tsa else "revinfo_unavailable",
                    why=text(lang, key, **values), level=text(lang, "level_" + level))


def fetch(cert: x509.Certificate, chain: list[x509.Certificate],
          roots: list[x509.Certificate], timeout: float) -> Revocation:
    """The checked revocation data of ``cert``'s chain (see the module's docstring)."""
    named = [cert, *(c for c in chain if c.issuer != c.subject)]
    urls = tuple(_urls(named))
    if not urls:
        return Revocation()
    try:
        path, crls, ocsps = asyncio.run(_validate(named, chain, roots, timeout))
    except _Unavailable as e:
        return Revocation(urls, problem=(e.key, e.values))
    return Revocation(urls, path, crls, ocsps)


class _Unavailable(Exception):
    """No checked data: a words key and its values."""

    def __init__(self, key: str, values: dict[str, str]) -> None:
        super().__init__(key)
        self.key, self.values = key, values


async def _validate(named: list[x509.Certificate], chain: list[x509.Certificate],
                    roots: list[x509.Certificate], timeout: float
                    ) -> tuple[Any, tuple[Any, ...], tuple[Any, ...]]:
    """The path of ``named[0]`` validated now with the data fetched from the sources of
    ``named`` (the signer's certificate and its CAs below the root)."""
    import aiohttp
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathError, RevokedError, ValidationError
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    cert = named[0]
    backend = AIOHttpFetcherBackend(per_request_timeout=timeout)
    vc = ValidationContext(trust_roots=[to_asn1(r) for r in roots],
                           other_certs=[to_asn1(c) for c in chain], allow_fetching=True,
                           revocation_mode="hard-fail", fetcher_backend=backend)
    validator = CertificateValidator(to_asn1(cert),
                                     intermediate_certs=[to_asn1(c) for c in chain],
                                     validation_context=vc)
    try:
        path = await asyncio.wait_for(validator.async_validate_path(), timeout)
    except TimeoutError:       # the deadline (an OSError: before the clauses below)
        waited = [c for c in named if not _crl_of(c, list(vc.crls))] or named
        raise _Unavailable("revinfo_why_timeout", {
            "urls": ", ".join(_urls(waited)), "seconds": f"{timeout:g}"}) from None
    except RevokedError as e:
        raise _revoked(e, cert, chain, list(vc.crls)) from None
    except (PathError, ValidationError) as e:
        # the certificate whose check failed: the signer's, else one of its CAs
        which = named[:1] if getattr(e, "is_ee_cert", False) else (named[1:] or named)
        detail = str(getattr(e, "failure_msg", None) or e)
        raise _Unavailable("revinfo_why_failed", {
            "urls": ", ".join(_urls(which) or _urls(named)),
            "detail": _clean(detail.removeprefix("The path could not be validated because "))
        }) from None
    except (aiohttp.ClientError, ValueError, TypeError, KeyError, OSError) as e:
        # an answer that parsed oddly, a network error pyHanko did not translate
        raise _Unavailable("revinfo_why_failed", {
            "urls": ", ".join(_urls(named)), "detail": _clean(f"{type(e).__name__}: {e}")
        }) from None
    finally:
        await backend.close()
    return path, tuple(vc.crls), tuple(vc.ocsps)


def _urls(certs: list[x509.Certificate]) -> list[str]:
    return list(dict.fromkeys(u for c in certs for u in policy.revocation_urls(c)))


def _crl_of(cert: x509.Certificate, crls: list[Any]) -> bool:
    """One of ``crls`` (fetched) is from ``cert``'s issuer."""
    for der in crls:
        try:
            if x509.load_der_x509_crl(der.dump()).issuer == cert.issuer:
                return True
        except ValueError:
            continue
    return False


def _revoked(e: Any, cert: x509.Certificate, chain: list[x509.Certificate],
             crls: list[Any]) -> SigningError:
    when = e.revocation_dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = getattr(e.reason, "human_friendly", None) or "no reason given"
    which = cert if e.is_ee_cert else _revoked_ca(chain, crls)
    if which is cert:
        what = f"the signing certificate (serial {policy.serial_hex(cert)})"
    elif which is not None:
        what = (f"the CA certificate {which.subject.rfc4514_string()} (serial "
                f"{policy.serial_hex(which)}) in the signing certificate's chain")
    else:
        what = f"a CA certificate in the chain of the signing certificate (serial " \
               f"{policy.serial_hex(cert)})"
    return SigningError(f"{what} was revoked by its CA at {when} ({reason}); nothing was "
                        "signed", hint="a revoked certificate may not sign: ask the CA for "
                                       "a new certificate (docs/signing.md)")


def _revoked_ca(chain: list[x509.Certificate], crls: list[Any]) -> x509.Certificate | None:
    """The CA certificate of ``chain`` that one of ``crls`` lists (OCSP: not found)."""
    for der in crls:
        try:
            crl = x509.load_der_x509_crl(der.dump())
        except ValueError:
            continue
        for c in chain:
            if c.issuer == crl.issuer and \
                    crl.get_revoked_certificate_by_serial_number(c.serial_number):
                return c
    return None


def _clean(detail: str) -> str:
    """A foreign message for one line: printable, bounded (a responder's words may hold
    control characters)."""
    flat = "".join(c if c.isprintable() else " " for c in detail).strip()
    return flat[:DETAIL_CHARS] + ("…" if len(flat) > DETAIL_CHARS else "")


def embed(pdf: bytes, *revs: Revocation) -> bytes:
    """``pdf`` (signed) with the data of ``revs`` (the signer's, the TSA's) in its DSS, in
    an incremental update."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.validation import DocumentSecurityStore

    out = BytesIO(pdf)
    try:
        DocumentSecurityStore.add_dss(out, sig_contents=None,
                                      paths=[r.path for r in revs if r.path is not None],
                                      crls=[c for r in revs for c in r.crls],
                                      ocsps=[o for r in revs for o in r.ocsps],
                                      force_write=True, strict=False)
    except (PdfError, ValueError, TypeError, KeyError) as e:
        raise SigningError(f"the revocation data could not be added to the signed PDF: "
                           f"{e}; nothing was written") from None
    return out.getvalue()


def tsa_chain(pdf: bytes) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    """The certificate of the TSA that timestamped the last signature of ``pdf`` (extended
    key usage timeStamping) and the other certificates its token carries."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from secops.signing.keys import from_asn1

    sig = PdfFileReader(BytesIO(pdf), strict=False).embedded_signatures[-1]
    attrs = sig.signer_info["unsigned_attrs"]
    certs: list[x509.Certificate] = []
    for attr in attrs if attrs.native is not None else ():
        if attr["type"].native == "signature_time_stamp_token":
            for token in attr["values"]:
                certs += [from_asn1(c.chosen) for c in token["content"]["certificates"] or ()]
    tsa = next((c for c in certs if _stamps(c)), None)
    return tsa, [c for c in certs if c is not tsa]


def _stamps(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return x509.oid.ExtendedKeyUsageOID.TIME_STAMPING in eku


def fetch_tsa(pdf: bytes, roots: list[x509.Certificate], timeout: float) -> Revocation:
    """``fetch`` for the TSA certificate of the last signature's timestamp (its CAs from the
    token); ``Revocation()`` when there is no timestamp. A revoked TSA certificate is a
    ``SigningError`` that names it as the TSA's."""
    tsa, others = tsa_chain(pdf)
    if tsa is None:
        return Revocation()
    try:
        return fetch(tsa, others, roots, timeout)
    except SigningError as e:
        raise SigningError("the time-stamping service's certificate: " + e.message,
                           hint=e.hint) from None
