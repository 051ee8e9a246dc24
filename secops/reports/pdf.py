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
from typing import Any

from secops import __version__
from secops.errors import ToolMissing

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
    try:
        import weasyprint
    except (ImportError, OSError) as e:  # OSError: Pango missing
        raise ToolMissing(f"the PDF renderer (WeasyPrint with Pango) is not available: {e}",
                          hint="apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
                               "fonts-dejavu-core") from None
    doc = weasyprint.HTML(string=html, url_fetcher=_no_fetch).render()
    _apply(doc.metadata, meta)
    return bytes(doc.write_pdf())


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
