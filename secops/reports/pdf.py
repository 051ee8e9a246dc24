"""HTML to PDF for the printed reports (WeasyPrint: the same self-contained HTML, inline SVG
charts included). Vietnamese needs a font that has its glyphs: DejaVu Sans is asked for
first (Debian: fonts-dejavu-core).

Every PDF secops makes carries its document information: Title, Author (the office),
Subject, CreationDate, Creator (secops and its version) and the language. A caller that
knows them passes a ``PdfMeta``; without one, the page's own ``<title>``, ``<meta
name="author">`` and ``<meta name="dcterms.created">`` are used, else "secops" and the time
of rendering, so that no PDF goes out without an author and a date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from secops import __version__
from secops.errors import ToolMissing

if TYPE_CHECKING:
    from secops.config.schema import Signing
    from secops.signing.pades import Signed

FONTS = '"DejaVu Sans", "Noto Sans", "Liberation Sans", sans-serif'
CREATOR = f"secops {__version__}"


@dataclass(frozen=True)
class PdfMeta:
    """The PDF's document information (``pdfinfo`` shows it)."""

    title: str
    author: str                      # the office, as a person would name it
    created: datetime                # aware; written with its UTC offset
    subject: str = ""
    keywords: tuple[str, ...] = ()
    lang: str = ""                   # "vi" or "en"; default: the page's <html lang>


def w3c_date(dt: datetime) -> str:
    """``2026-03-16T07:00:00+07:00``: what WeasyPrint turns into the PDF's date."""
    if dt.tzinfo is None:
        dt = dt.astimezone()
    text = dt.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def render_pdf(html: str, meta: PdfMeta | None = None) -> bytes:
    """The PDF of ``html`` (which must not fetch anything: no base URL is given), with
    ``meta`` as its document information (see the module's docstring without it)."""
    return _render(html, meta)[0]


def _render(html: str, meta: PdfMeta | None) -> tuple[bytes, Any]:
    """The PDF and WeasyPrint's last page (its anchors: where each id landed)."""
    try:
        import weasyprint
    except (ImportError, OSError) as e:  # OSError: Pango missing
        raise ToolMissing(f"the PDF renderer (WeasyPrint with Pango) is not available: {e}",
                          hint="apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
                               "fonts-dejavu-core") from None
    doc = weasyprint.HTML(string=html, url_fetcher=_no_fetch).render()
    _apply(doc.metadata, meta)
    return bytes(doc.write_pdf()), doc.pages[-1]


# The room the PAdES signature box takes at the end of the last page (secops.signing).
SLOT_ID = "secops-signature-slot"
SLOT = (f'<div id="{SLOT_ID}" style="height: 24mm; width: 95mm; margin: 6mm 0 0 auto; '
        'break-inside: avoid"></div>')
CSS_PX = 0.75           # PDF points per CSS pixel


def with_slot(html: str) -> str:
    """``html`` with room for the signature box after its last content."""
    at = html.rfind("</body>")
    return html + SLOT if at < 0 else html[:at] + SLOT + html[at:]


def render_report_pdf(html: str, meta: PdfMeta | None, signing: Signing | None,
                      office: str, lang: str) -> tuple[bytes, Signed | None]:
    """The report's PDF as ``render_pdf`` makes it, PAdES-signed by the office's key when
    ``signing`` is configured (with its box in the room left at the end), else unsigned
    and unchanged. ``SigningError`` (exit 3) when it cannot be signed: no unsigned PDF is
    returned in place of a signed one."""
    if signing is None:
        return render_pdf(html, meta), None
    from secops.signing.pades import Box, sign_pdf

    pdf, page = _render(with_slot(html), meta)
    box = None
    found = page.anchors.get(SLOT_ID)
    if found is not None:
        x1, y1, x2, y2 = (v * CSS_PX for v in found)
        height = page.height * CSS_PX
        box = Box(x1, height - y2, x2, height - y1)
    signed = sign_pdf(pdf, signing, office, lang, box=box)
    return signed.data, signed


def pades_summary(signed: Signed) -> dict[str, Any]:
    """What a command's JSON says of the PAdES signature it made: its level, signer, time,
    whether revocation data is embedded (``revocation``: "embedded", "unavailable",
    "not_named") and, when it could not be, ``warning``: why, in the report's language."""
    out = {"level": signed.level, "signer": signed.signer.name,
           "serial": signed.signer.serial,
           "time": signed.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "revocation": signed.revocation}
    return {**out, "warning": signed.warning} if signed.warning else out


def _apply(m: Any, meta: PdfMeta | None) -> None:
    m.generator = CREATOR
    if meta is None:
        m.title = m.title or "secops"
        m.authors = m.authors or ["secops"]
        m.created = m.created or w3c_date(datetime.now(UTC))
        return
    m.title = meta.title
    m.authors = [meta.author]
    m.created = w3c_date(meta.created)
    m.modified = m.created
    if meta.subject:
        m.description = meta.subject
    if meta.keywords:
        m.keywords = list(meta.keywords)
    if meta.lang:
        m.lang = meta.lang


def _no_fetch(url: str, timeout: int = 10, ssl_context: object = None) -> dict[str, object]:
    """Reports are self-contained: nothing is fetched while rendering."""
    raise ValueError(f"reports fetch nothing ({url})")
