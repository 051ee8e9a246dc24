"""PAdES signing of a rendered report (adapter: pyHanko, the token, the TSA).

``sign_pdf`` checks first (certificate valid now, key usage allows signing, a path to a
configured root) and raises ``SigningError`` (exit 3) before anything is signed; it works
on bytes and returns bytes, so the caller's atomic write is the only write: nothing is ever
half-written. The signature is PAdES (ETSI.CAdES.detached) with SHA-256: B-T with an RFC
3161 timestamp when ``signing.tsa_url`` is set, else B-B; B-LT when it is timestamped and the
chain's revocation data (CRL/OCSP, named by the certificates) was fetched, checked and
embedded (``secops.signing.revocation``: a revoked certificate signs nothing; data that
cannot be had leaves B-T and ``Signed.warning`` says why). ``Signed.level`` says which.
The visible box on the last page says office, signer (name, title), local time, the
certificate's serial and the level, in the report's language, in DejaVu Sans (embedded
subset: Vietnamese needs its precomposed letters).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from cryptography import x509

from secops.config.schema import Signing
from secops.errors import SigningError, ToolMissing
from secops.signing import policy, revocation
from secops.signing.keys import Key, open_key, roots_of, to_asn1
from secops.signing.words import text

FIELD = "ChuKySo"
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf")
KEY_USAGE = frozenset({"digital_signature", "non_repudiation"})
MM = 72 / 25.4
BOX_W, BOX_H = 95 * MM, 24 * MM      # the signature box, in PDF points
FONT_SIZE = 7


@dataclass(frozen=True)
class Box:
    """Where the signature box goes on the last page: PDF points from the bottom left."""

    x1: float
    y1: float
    x2: float
    y2: float

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (round(self.x1), round(self.y1), round(self.x2), round(self.y2))


DEFAULT_BOX = Box(595 - 15 * MM - BOX_W, 22 * MM, 595 - 15 * MM, 22 * MM + BOX_H)  # A4


@dataclass(frozen=True)
class Signed:
    data: bytes
    level: str                   # "B-B", "B-T" or "B-LT"
    signer: policy.Signer
    time: datetime               # aware, UTC: when it was signed (the box shows local time)
    revocation: str = "not_named"   # "embedded", "unavailable", "not_named" (Revocation)
    warning: str | None = None   # why the revocation data is missing, in the report's language


def font_file() -> str:
    for f in FONT_FILES:
        if Path(f).is_file():
            return f
    raise ToolMissing("no font with the Vietnamese letters for the signature box",
                      hint="apt-get install fonts-dejavu-core")


@functools.lru_cache(maxsize=8)
def box_font(path: str, label: str) -> bytes:
    """The font cut down to the box's letters and scaled to 1000 units per em: pyHanko's
    glyph widths assume 1000 (DejaVu Sans has 2048, and its letters would print spaced
    apart). A few kilobytes, made in a few hundredths of a second."""
    from fontTools import subset, ttLib
    from fontTools.ttLib.scaleUpem import scale_upem

    font = ttLib.TTFont(path)
    options = subset.Options()
    options.layout_features = ["*"]
    options.notdef_outline = True
    cut = subset.Subsetter(options)
    cut.populate(text=label + " ?")
    cut.subset(font)
    if font["head"].unitsPerEm != 1000:
        scale_upem(font, 1000)
    out = BytesIO()
    font.save(out)
    return out.getvalue()


def _font_factory(label: str) -> Any:
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

    data = box_font(font_file(), label)

    class BoxFont(GlyphAccumulatorFactory):
        def create_font_engine(self, writer: Any, obj_stream: Any = None) -> Any:
            if obj_stream is None and writer.stream_xrefs:
                obj_stream = writer.prepare_object_stream()
            return GlyphAccumulator(writer=writer, font_handle=BytesIO(data),
                                    font_size=self.font_size, obj_stream=obj_stream)

    return BoxFont(font_file="", font_size=FONT_SIZE)


def sign_pdf(pdf: bytes, sg: Signing, office: str, lang: str, *, box: Box | None = None,
             now: datetime | None = None) -> Signed:
    """``pdf`` signed by the office's key (see the module's docstring)."""
    when = now or datetime.now(UTC)
    with open_key(sg) as key:
        roots = roots_of(sg, list(key.chain))
        check_before_signing(key, roots, when)
        rev = revocation.fetch(key.certificate, list(key.chain), roots,
                               sg.revocation_timeout_seconds)
        signer = policy.signer_of(key.certificate, sg.signer_name, sg.signer_title)
        timestamper = None
        if sg.tsa_url:
            from secops.signing.tsa import HttpTimeStamper

            timestamper = HttpTimeStamper(sg.tsa_url, sg.tsa_timeout_seconds)
        level = policy.level_of(timestamper is not None, rev.embeddable)
        label = policy.box_text(office, signer, when.astimezone(), level, lang)
        data = sign_bytes(pdf, key.signer, label, box or DEFAULT_BOX, timestamper,
                          reason=text(lang, "reason"), name=signer.name)
        warning = rev.warning(lang, level)
        tsa_rev = revocation.fetch_tsa(data, roots, sg.revocation_timeout_seconds) \
            if level == "B-LT" else revocation.Revocation()
        if tsa_rev.urls and not tsa_rev.embeddable:
            # B-LT needs the TSA's revocation data too: without it, signed again as B-T
            level = "B-T"
            label = policy.box_text(office, signer, when.astimezone(), level, lang)
            data = sign_bytes(pdf, key.signer, label, box or DEFAULT_BOX, timestamper,
                              reason=text(lang, "reason"), name=signer.name)
            warning = tsa_rev.warning(lang, level, tsa=True)
            tsa_rev = revocation.Revocation()
    self_check(data, key.certificate)
    if rev.embeddable:
        data = revocation.embed(data, rev, *([tsa_rev] if tsa_rev.embeddable else []))
    return Signed(data=data, level=level, signer=signer, time=when, revocation=rev.status,
                  warning=warning)


def self_check(data: bytes, cert: x509.Certificate) -> None:
    """The signature just made verifies against ``cert``; else ``SigningError`` and nothing
    is written. A key on the token that is not the configured certificate's (a token
    replaced or renewed, ``signing.certificate`` not) made a report no one could verify."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity

    sig = PdfFileReader(BytesIO(data), strict=False).embedded_signatures[-1]
    intact, valid = validate_sig_integrity(
        sig.signer_info, to_asn1(cert), expected_content_type="data",
        actual_digest=sig.compute_digest())
    if not (intact and valid):
        raise SigningError(
            f"the signature made with the signing key does not verify with the certificate "
            f"(serial {policy.serial_hex(cert)}): the key is not that certificate's; nothing "
            "was signed",
            hint="signing.certificate must be the certificate of the key signing.key_label "
                 "names (export it from the token: docs/signing.md)")


def check_before_signing(key: Key, roots: list[x509.Certificate], when: datetime) -> None:
    """The certificate may sign now and chains to one of ``roots``; else ``SigningError``."""
    problems = policy.problems_before_signing(key.certificate, when)
    if problems:
        raise SigningError(problems[0] + "; nothing was signed",
                           hint="the CA must renew or replace the certificate "
                                "(docs/signing.md)")
    if not roots:
        raise SigningError("signing: no trust root: set signing.trust_roots (the CA's root "
                           "certificate, PEM) or put the root in signing.chain")
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

    vc = ValidationContext(trust_roots=[to_asn1(r) for r in roots],
                           other_certs=[to_asn1(c) for c in key.chain], moment=when,
                           allow_fetching=False, revocation_mode="soft-fail")
    validator = CertificateValidator(to_asn1(key.certificate),
                                     intermediate_certs=[to_asn1(c) for c in key.chain],
                                     validation_context=vc)
    try:
        asyncio.run(validator.async_validate_path())
    except PathBuildingError:
        raise SigningError(
            f"the signing certificate (serial {policy.serial_hex(key.certificate)}, issued by "
            f"{key.certificate.issuer.rfc4514_string()}) does not chain to a configured trust "
            "root; nothing was signed",
            hint="signing.chain must hold the issuing CAs and signing.trust_roots the root"
        ) from None
    except PathValidationError as e:
        raise SigningError(f"the signing certificate's chain is not valid now: {e}; nothing "
                           "was signed") from None


def sign_bytes(pdf: bytes, signer: Any, label: str, box: Box, timestamper: Any, *,
               reason: str, name: str) -> bytes:
    """The signing itself, without the checks (``sign_pdf`` checks first)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.sign import fields, signers
    from pyhanko.sign.general import SigningError as HankoSigningError
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko.stamp import TextStampStyle

    style = TextStampStyle(
        stamp_text="%(box)s", border_width=1,
        text_box_style=TextBoxStyle(font=_font_factory(label),
                                    font_size=FONT_SIZE, leading=FONT_SIZE + 2))
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason, name=name, signer_key_usage=set(KEY_USAGE))
    spec = fields.SigFieldSpec(sig_field_name=FIELD, on_page=-1, box=box.as_tuple())
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
        out = signers.PdfSigner(meta, signer, timestamper=timestamper, stamp_style=style,
                                new_field_spec=spec).sign_pdf(
            writer, appearance_text_params={"box": label})
    except (HankoSigningError, PdfError) as e:
        raise SigningError(f"the PDF could not be signed: {e}") from None
    except TimestampRequestError as e:   # the TSA answered, but with no granted token
        raise SigningError(f"the time-stamping service refused a timestamp: {e}; the report "
                           "was not signed") from None
    except RuntimeError as e:  # the token (python-pkcs11's errors are RuntimeErrors)
        raise SigningError(f"the token refused to sign: {type(e).__name__} {e}") from None
    return bytes(out.getvalue())
