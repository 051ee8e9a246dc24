"""``secops report verify FILE.pdf`` (adapter: pyHanko's validator, no network).

Each signature is checked for: the signed bytes unchanged (``intact``); nothing but
validation data added after it (``unchanged``: an incremental update that adds or changes
content is reported); the signer's certificate chaining to a trust root (``chain``: the
``--trust`` files, else the office config's ``signing.trust_roots``); the certificate valid
at the signing time (``validity``: the timestamp's time when there is a valid one, else the
time the signer claims, and the result says which); the timestamp (``timestamp``). No
revocation data is fetched (the police verify offline); what the file embeds in its DSS is
used at the signing time: a certificate it shows revoked fails ``chain`` (``chain_revoked``).
The level is B-LT when the signature is timestamped and the embedded data answers for every
certificate on the signer's path that names a CRL or OCSP source (at least one does).

What a forger tries and what stops it: a signature dictionary that cannot be read (no or an
odd /ByteRange, empty /Contents) is a failed ``intact`` check (``intact_malformed``), not a
crash; bytes after the signed revision that no proper revision accounts for (an update
without its ``%%EOF``, which some readers show and the validator ignores) fail ``unchanged``
(``unchanged_hidden``); without a trusted timestamp the signing time is only the signer's
claim, so the certificate must also be valid now (``validity_unproven``: a backdated
signature by an expired certificate). A document timestamp (/DocTimeStamp) is validation
data of the signatures before it, not a signature of the office, and is not listed.

Bad input (a missing file, not a PDF, a PDF without signatures, an unreadable trust root) is
a ``UsageError`` (exit 2); a failed check is a result, not an exception (exit 1, the CLI).
"""

from __future__ import annotations

import asyncio
import os
import stat
import zlib
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from cryptography import x509

from secops.errors import UsageError
from secops.signing import policy
from secops.signing.keys import from_asn1, quiet_libraries, to_asn1
from secops.signing.outcome import Check, SignatureResult, Verification

MAX_BYTES = 512 << 20
PDF_WHITESPACE = b" \t\r\n\f\x00"
UNKNOWN_SIGNER = {"name": "?", "subject": "", "issuer": "", "serial": "?", "not_before": "",
                  "not_after": ""}


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_roots(paths: list[Path]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise UsageError(f"--trust {p}: cannot be read: {e.strerror}") from None
        try:
            roots += (x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                      else [x509.load_der_x509_certificate(data)])
        except ValueError:
            raise UsageError(f"--trust {p}: not a certificate (PEM or DER)") from None
    return roots


def verify_pdf(path: Path, roots: list[x509.Certificate]) -> Verification:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    quiet_libraries()
    data = read_pdf(path)
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        if reader.encrypted:
            raise UsageError(f"{path}: the PDF is encrypted (password-protected): a report "
                             "secops signed is not; nothing in it can be checked")
        sigs = signatures_of(reader)
        dss = embedded_revinfo(reader)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        raise UsageError(f"{path}: not a readable PDF ({e})") from None
    if not sigs:
        raise UsageError(f"{path}: the PDF carries no digital signature",
                         hint="a report signed by secops has one when [signing] is set; a "
                              "signature removed from a signed report leaves none")
    return Verification(str(path), tuple(
        _broken(name, sig) if isinstance(sig, str) else _check_safely(name, sig, roots, dss,
                                                                     data)
        for name, sig in sigs))


def embedded_revinfo(reader: Any) -> Any:
    """The file's document security store (pyHanko's ``DocumentSecurityStore``) when it
    holds revocation data (CRLs or OCSP responses), else None. A DSS that cannot be read is
    none: it is validation data added after signing, never part of what was signed."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.validation import DocumentSecurityStore
    from pyhanko.sign.validation.errors import ValidationInfoReadingError

    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (ValidationInfoReadingError, PdfError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, NotImplementedError, zlib.error):
        return None
    return dss if dss.crls or dss.ocsps else None


def read_pdf(path: Path) -> bytes:
    """The file's bytes: a regular file (a FIFO would block, a device never end) of at most
    MAX_BYTES that starts with the PDF header; else ``UsageError``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot be read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: not a regular file (a FIFO, a device or a socket): "
                             "not a report")
        if st.st_size > MAX_BYTES:
            raise UsageError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a report")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError(f"{path}: cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise UsageError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a report")
    if not data.startswith(b"%PDF-"):
        at = data.find(b"%PDF-", 0, 1024)
        raise UsageError(f"{path}: not a PDF file" if at < 0 else
                         f"{path}: {at} bytes of something else before the PDF header (a "
                         "file that is also another kind of file): not a report")
    return data


def signatures_of(reader: Any) -> list[tuple[str, Any]]:
    """(field name, signature) for each filled signature field in signing order; in place of
    a signature that cannot be read, the reason (a string). Document timestamps are left
    out (validation data, judged by the ``unchanged`` check of the signatures before)."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign.fields import enumerate_sig_fields
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

    found: list[tuple[int, str, Any]] = []
    for name, value, field in enumerate_sig_fields(reader, filled_status=True):
        obj = value.get_object()
        subfilter = obj.get("/SubFilter") if hasattr(obj, "get") else None
        if subfilter == "/ETSI.RFC3161" or (hasattr(obj, "get")
                                            and obj.get("/Type") == "/DocTimeStamp"):
            continue
        if subfilter not in ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached"):
            found.append((-1, str(name), f"unsupported /SubFilter {subfilter}"))
            continue
        try:
            sig = EmbeddedPdfSignature(reader, field, name)
            found.append((sig.signed_revision, str(name), sig))
        except (PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                AssertionError) as e:
            found.append((-1, str(name), str(e) or type(e).__name__))
    return [(name, sig) for _, name, sig in sorted(found, key=lambda f: f[0])]


def _broken(name: str, why: str) -> SignatureResult:
    return SignatureResult(field=name, level="unknown", signer=dict(UNKNOWN_SIGNER),
                           signing_time=None, time_source="claimed", timestamp=None,
                           checks=(Check("intact", False, "intact_malformed",
                                         {"why": why[:300]}),))


def _check_safely(name: str, sig: Any, roots: list[x509.Certificate], dss: Any,
                  data: bytes) -> SignatureResult:
    """``_check``; a signature the validator cannot take apart is broken, not a crash."""
    from pyhanko.pdf_utils.misc import PdfError

    try:
        return _check(sig, roots, dss, data)
    except (PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            AssertionError, RecursionError) as e:
        return _broken(name, str(e) or type(e).__name__)


def _context(roots: list[x509.Certificate], moment: datetime | None, extra: list[Any],
             dss: Any = None, mode: str = "soft-fail") -> Any:
    from pyhanko_certvalidator import ValidationContext

    trust = [to_asn1(r) for r in roots]
    if dss is not None:   # its certificates, CRLs and OCSP responses; still no fetching
        return dss.as_validation_context({
            "trust_roots": trust, "other_certs": extra, "moment": moment,
            "allow_fetching": False, "revocation_mode": mode})
    return ValidationContext(trust_roots=trust, other_certs=extra, moment=moment,
                             allow_fetching=False, revocation_mode=mode)


def _validate(sig: Any, roots: list[x509.Certificate], moment: datetime | None,
              dss: Any = None, mode: str = "soft-fail") -> Any:
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.settings import KeyUsageConstraints

    extra = list(sig.other_embedded_certs)
    ku = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                             match_all_key_usages=False)
    strict = mode == "hard-fail"  # (the TSA judged with the same data, at the same time)
    return asyncio.run(async_validate_pdf_signature(
        sig, signer_validation_context=_context(roots, moment, extra, dss, mode),
        ts_validation_context=_context(roots, moment if strict else None, extra,
                                       dss if strict else None, mode),
        key_usage_settings=ku))


def _validate_with(sig: Any, roots: list[x509.Certificate], moment: datetime, dss: Any,
                   mode: str = "soft-fail") -> Any | None:
    """``_validate`` with the embedded revocation data, or None when that data cannot be
    parsed (junk added after signing makes the file no B-LT; it does not break the
    signature)."""
    from pyhanko.pdf_utils.misc import PdfError

    try:
        return _validate(sig, roots, moment, dss, mode)
    except (PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            NotImplementedError, zlib.error):   # a stream that does not decode
        return None


def _long_term(sig: Any, roots: list[x509.Certificate], when: datetime, dss: Any,
               status: Any) -> bool:
    """The embedded data answers for every certificate on the signer's path (validated in
    ``status``) that names a revocation source, and one does: validation at ``when`` that
    requires it ("hard-fail") with only that data holds, for the timestamp's TSA as for the
    signer."""
    path = getattr(status, "validation_path", None)
    if dss is None or path is None or not status.trusted or status.revoked:
        return False
    if not any(policy.revocation_urls(from_asn1(c))
               for c in path.iter_certs(include_root=False)):
        return False
    strict = _validate_with(sig, roots, when, dss, "hard-fail")
    if strict is None or not strict.trusted or strict.revoked:
        return False
    tst = strict.timestamp_validity  # the TSA's certificates too (B-LT is B-T's, in full)
    return tst is None or bool(tst.trusted and not getattr(tst, "revoked", False))


def _at_signing_time(sig: Any, roots: list[x509.Certificate], when: datetime, dss: Any
                     ) -> Any:
    """The validation at ``when`` with the embedded revocation data: a certificate it shows
    revoked then is revoked. Data that does not check out (damaged, or issued after
    ``when``, as a later "add verification information" may add it) is not used: validation
    data is not part of what was signed, and without it the file is no B-LT."""
    if dss is not None:
        with_dss = _validate_with(sig, roots, when, dss)
        if with_dss is not None and (with_dss.trusted or with_dss.revoked):
            return with_dss
    return _validate(sig, roots, when)


def _check(sig: Any, roots: list[x509.Certificate], dss: Any, data: bytes
           ) -> SignatureResult:
    now = _validate(sig, roots, None)
    tst = now.timestamp_validity
    stamped = tst is not None and tst.intact and tst.valid and tst.trusted
    when: datetime = (tst.timestamp if stamped else now.signer_reported_dt) \
        or datetime.now(UTC)
    source = "timestamp" if stamped else "claimed"
    at = _at_signing_time(sig, roots, when, dss)
    cert = from_asn1(sig.signer_cert)
    validity = _validity(cert, when, source)
    if validity.ok and not stamped:   # only a timestamp proves a time: the certificate must
        validity = _unproven(cert, when) or validity   # also be valid now
    if validity.ok:
        chain = _chain(at, roots)
    else:  # judge the path apart from the time: the validity check says what is wrong
        chain = _chain(_validate(sig, roots, cert.not_valid_before_utc + timedelta(seconds=1)),
                       roots)
    checks = (
        Check("intact", bool(now.intact and now.valid), "intact_yes" if now.intact and
              now.valid else "intact_no"),
        _unchanged(sig, now, data),
        chain, validity,
        _timestamp(tst),
    )
    return SignatureResult(
        field=str(sig.field_name),
        level=policy.level_of(tst is not None, stamped and _long_term(sig, roots, when, dss, at)),
        signer={"name": policy.subject_field(cert, x509.oid.NameOID.COMMON_NAME),
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(), "serial": policy.serial_hex(cert),
                "not_before": iso(cert.not_valid_before_utc) or "",
                "not_after": iso(cert.not_valid_after_utc) or ""},
        signing_time=iso(when), time_source=source,
        timestamp=None if tst is None else {
            "ok": bool(stamped), "time": iso(tst.timestamp),
            "tsa": from_asn1(tst.signing_cert).subject.rfc4514_string()},
        checks=checks)


def _unchanged(sig: Any, status: Any, data: bytes) -> Check:
    from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Check("unchanged", True, "unchanged_yes")
    after = sig.reader.xrefs.total_revisions - 1 - sig.signed_revision
    hidden = unread_tail(data, sig.byte_range[2] + sig.byte_range[3], after)
    if hidden:
        return Check("unchanged", False, "unchanged_hidden", {"n": str(hidden)})
    level = status.modification_level
    if status.coverage == SignatureCoverageLevel.ENTIRE_REVISION and \
            level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
        rewritten = metadata_changed(sig.reader, sig.signed_revision)
        if rewritten:  # the validator lets the document information change: we do not
            return Check("unchanged", False, "unchanged_metadata",
                         {"n": str(after), "fields": ", ".join(rewritten)})
        return Check("unchanged", True, "unchanged_harmless")
    diff = status.diff_result
    what = (str(diff) if isinstance(diff, SuspiciousModification) and str(diff)
            else f"modification level {getattr(level, 'name', 'unknown')}")
    return Check("unchanged", False, "unchanged_no", {"n": str(after), "what": what})


META_FIELDS = ("/Title", "/Author", "/Subject", "/Keywords", "/Creator", "/CreationDate")


def metadata_changed(reader: Any, signed_revision: int) -> list[str]:
    """The document information entries (title, author, ...) and the XMP metadata stream
    that differ between the signed revision and the file as it is: what a reader shows in
    its window title and its document properties. The time of the last change and the
    producing library are left out (an update adding validation data may set them). Each
    value is read as of its revision (an indirect object resolved there)."""
    from pyhanko.pdf_utils import generic

    def at(resolver: Any, value: Any) -> Any:
        while isinstance(value, generic.IndirectObject):
            value = resolver.get_object(value.reference)
        return value

    def entries(resolver: Any) -> dict[str, Any]:
        info = at(resolver, resolver.trailer_view.raw_get("/Info")) \
            if "/Info" in resolver.trailer_view else None
        if not isinstance(info, generic.DictionaryObject):
            info = generic.DictionaryObject()
        found: dict[str, Any] = {k: at(resolver, info.raw_get(k)) for k in META_FIELDS
                                 if k in info}
        root = at(resolver, resolver.trailer_view.raw_get("/Root"))
        if isinstance(root, generic.DictionaryObject) and "/Metadata" in root:
            xmp = at(resolver, root.raw_get("/Metadata"))
            found["XMP metadata"] = bytes(xmp.data) if isinstance(
                xmp, generic.StreamObject) else repr(xmp)
        return found

    then = entries(reader.get_historical_resolver(signed_revision))
    now = entries(reader.get_historical_resolver(reader.xrefs.total_revisions - 1))
    return [k.lstrip("/") for k in (*META_FIELDS, "XMP metadata")
            if then.get(k) != now.get(k)]


def unread_tail(data: bytes, signed_end: int, later: int) -> int:
    """How many bytes at the end of the file no revision the validator read accounts for:
    after the last ``%%EOF``, or, when no revision follows the signed one, after the signed
    bytes. PDF readers that repair files show such an update; the validator skips it."""
    end = len(data.rstrip(PDF_WHITESPACE))
    eof = data.rfind(b"%%EOF")
    if eof < 0:
        return end
    if end > eof + 5:
        return end - (eof + 5)
    return max(0, end - signed_end) if later == 0 else 0


def _chain(status: Any, roots: list[x509.Certificate]) -> Check:
    if not roots:
        return Check("chain", False, "chain_none")
    if status.revoked:
        return Check("chain", False, "chain_revoked")
    if status.trusted:
        anchor = status.validation_path.trust_anchor if status.validation_path else None
        name = getattr(getattr(anchor, "authority", None), "name", None)
        root = name.human_friendly if name is not None else ""
        return Check("chain", True, "chain_yes", {"root": root})
    indic = status.trust_problem_indic
    return Check("chain", False, "chain_no",
                 {"why": indic.name if indic is not None else "untrusted"})


def _validity(cert: x509.Certificate, when: datetime, source: str) -> Check:
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    values = {"nb": cert.not_valid_before_utc.strftime(fmt),
              "na": cert.not_valid_after_utc.strftime(fmt),
              "when": when.astimezone(UTC).strftime(fmt), "source": f"@source_{source}"}
    if when < cert.not_valid_before_utc:
        return Check("validity", False, "validity_early", values)
    if when > cert.not_valid_after_utc:
        return Check("validity", False, "validity_expired", values)
    return Check("validity", True, "validity_yes", values)


def _unproven(cert: x509.Certificate, claimed: datetime) -> Check | None:
    """Without a timestamp nothing shows the signature was made at the time it claims: a
    certificate expired (or not yet valid) now may have signed it yesterday, backdated."""
    now = datetime.now(UTC)
    if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return None
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    return Check("validity", False, "validity_unproven", {
        "nb": cert.not_valid_before_utc.strftime(fmt),
        "na": cert.not_valid_after_utc.strftime(fmt),
        "when": claimed.astimezone(UTC).strftime(fmt), "now": now.strftime(fmt)})


def _timestamp(tst: Any) -> Check:
    if tst is None:
        return Check("timestamp", True, "timestamp_none")
    if tst.intact and tst.valid and tst.trusted:
        return Check("timestamp", True, "timestamp_yes", {
            "when": iso(tst.timestamp) or "",
            "tsa": from_asn1(tst.signing_cert).subject.rfc4514_string()})
    why = tst.trust_problem_indic.name if tst.trust_problem_indic is not None else (
        "digest mismatch" if not tst.intact else "bad signature")
    return Check("timestamp", False, "timestamp_bad", {"why": why})
