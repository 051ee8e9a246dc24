"""HTML to PDF for the printed reports (WeasyPrint: the same self-contained HTML, inline SVG
charts included). Vietnamese needs a font that has its glyphs: DejaVu Sans is asked for
first (Debian: fonts-dejavu-core)."""

from __future__ import annotations

from secops.errors import ToolMissing

FONTS = '"DejaVu Sans", "Noto Sans", "Liberation Sans", sans-serif'


def render_pdf(html: str) -> bytes:
    """The PDF of ``html`` (which must not fetch anything: no base URL is given)."""
    try:
        import weasyprint
    except (ImportError, OSError) as e:  # OSError: Pango missing
        raise ToolMissing(f"the PDF renderer (WeasyPrint with Pango) is not available: {e}",
                          hint="apt-get install libpango-1.0-0 libpangoft2-1.0-0 "
                               "fonts-dejavu-core") from None
    doc = weasyprint.HTML(string=html, url_fetcher=_no_fetch)
    return bytes(doc.write_pdf())


def _no_fetch(url: str, timeout: int = 10, ssl_context: object = None) -> dict[str, object]:
    """Reports are self-contained: nothing is fetched while rendering."""
    raise ValueError(f"reports fetch nothing ({url})")
