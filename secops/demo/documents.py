"""Real, valid office documents from plain text: DOCX, XLSX and PDF bytes (stdlib only).

Used for the demo folder, for canary and decoy files and by the tests. The writers are pure
(values in, bytes out) and deterministic: the same input gives the same bytes, because every
ZIP member carries a fixed timestamp and the PDF carries a fixed date and no random ID.

The OOXML packages are the smallest that Word and LibreOffice open without a repair prompt;
the PDF is version 1.4 with a byte-exact cross-reference table and the standard Helvetica font
(whose WinAnsi encoding has no Vietnamese letters, so PDF text is transliterated to ASCII).
"""

from __future__ import annotations

import io
import re
import textwrap
import unicodedata
import zipfile
import zlib
from xml.etree import ElementTree
from xml.sax.saxutils import escape

ZIP_DATE = (2026, 3, 1, 8, 0, 0)
CREATED = "2026-03-01T08:00:00Z"
AUTHOR = "UBND xã"

_NS_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_NS_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_NS_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_REL_DOC = f"{_NS_DOC_REL}/officeDocument"
_REL_CORE = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
_CT_CORE = "application/vnd.openxmlformats-package.core-properties+xml"
_CT_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_CT_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_CT_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Characters XML 1.0 forbids even when escaped (C0 controls except tab, LF, CR; U+FFFE/F).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(_XML_INVALID.sub("", value))


def _package(members: list[tuple[str, str]]) -> bytes:
    """A ZIP of ``(name, xml)`` members, in order, with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, xml in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, xml.encode("utf-8"))
    return buf.getvalue()


def _content_types(overrides: dict[str, str]) -> str:
    parts = "".join(
        f'<Override PartName="{part}" ContentType="{ctype}"/>' for part, ctype in overrides.items()
    )
    return (
        f"{_XML_DECL}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f"{parts}</Types>"
    )


def _relationships(targets: list[tuple[str, str]]) -> str:
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{rtype}" Target="{target}"/>'
        for i, (rtype, target) in enumerate(targets, start=1)
    )
    return f'{_XML_DECL}<Relationships xmlns="{_NS_PKG_REL}">{rels}</Relationships>'


def _core(title: str) -> str:
    return (
        f"{_XML_DECL}<cp:coreProperties "
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{_text(title[:200])}</dc:title><dc:creator>{_text(AUTHOR)}</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{CREATED}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{CREATED}</dcterms:modified>'
        "</cp:coreProperties>"
    )


def docx_bytes(paragraphs: list[str]) -> bytes:
    """A WordprocessingML document with one paragraph per item (the first is the title)."""
    body = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{_text(p)}</w:t></w:r></w:p>' for p in paragraphs
    )
    document = (
        f'{_XML_DECL}<w:document xmlns:w="{_NS_W}"><w:body>{body or "<w:p/>"}'
        '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/>'
        '<w:pgMar w:top="1134" w:right="850" w:bottom="1134" w:left="1701" '
        'w:header="708" w:footer="708" w:gutter="0"/></w:sectPr></w:body></w:document>'
    )
    return _package([
        ("[Content_Types].xml", _content_types({
            "/word/document.xml": _CT_DOCX, "/docProps/core.xml": _CT_CORE})),
        ("_rels/.rels", _relationships([
            (_REL_DOC, "word/document.xml"), (_REL_CORE, "docProps/core.xml")])),
        ("word/document.xml", document),
        ("docProps/core.xml", _core(paragraphs[0] if paragraphs else "")),
    ])


def column_letter(index: int) -> str:
    """Spreadsheet column name of 0-based ``index``: 0 -> A, 25 -> Z, 26 -> AA."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _cell(ref: str, value: str | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{value}</v></c>'
    text = _text(str(value))
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def xlsx_bytes(rows: list[list[str | int]]) -> bytes:
    """A one-sheet SpreadsheetML workbook; strings are inline, integers numeric."""
    sheet_rows = "".join(
        f'<row r="{r}">'
        + "".join(_cell(f"{column_letter(c)}{r}", v) for c, v in enumerate(row))
        + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    sheet = f'{_XML_DECL}<worksheet xmlns="{_NS_S}"><sheetData>{sheet_rows}</sheetData></worksheet>'
    workbook = (
        f'{_XML_DECL}<workbook xmlns="{_NS_S}" xmlns:r="{_NS_DOC_REL}">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    return _package([
        ("[Content_Types].xml", _content_types({
            "/xl/workbook.xml": _CT_XLSX, "/xl/worksheets/sheet1.xml": _CT_SHEET})),
        ("_rels/.rels", _relationships([(_REL_DOC, "xl/workbook.xml")])),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", _relationships([
            (f"{_NS_DOC_REL}/worksheet", "worksheets/sheet1.xml")])),
        ("xl/worksheets/sheet1.xml", sheet),
    ])


def docx_paragraphs(data: bytes) -> list[str]:
    """The text of each paragraph of a DOCX (any producer); the inverse of ``docx_bytes``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = ElementTree.fromstring(zf.read("word/document.xml"))  # noqa: S314 - own files
    return ["".join(t.text or "" for t in p.iter(f"{{{_NS_W}}}t"))
            for p in root.iter(f"{{{_NS_W}}}p")]


def xlsx_rows(data: bytes) -> list[list[str | int]]:
    """The cells of the first sheet written by ``xlsx_bytes`` (inline strings, integers)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = ElementTree.fromstring(zf.read("xl/worksheets/sheet1.xml"))  # noqa: S314
    rows: list[list[str | int]] = []
    for row in root.iter(f"{{{_NS_S}}}row"):
        cells: list[str | int] = []
        for c in row.iter(f"{{{_NS_S}}}c"):
            if c.get("t") == "inlineStr":
                cells.append("".join(t.text or "" for t in c.iter(f"{{{_NS_S}}}t")))
            else:
                cells.append(int(c.findtext(f"{{{_NS_S}}}v") or 0))
        rows.append(cells)
    return rows


# ---------------------------------------------------------------- PDF

PDF_LINES_PER_PAGE = 52
PDF_WRAP = 95


def ascii_text(value: str) -> str:
    """Vietnamese (or any Latin) text without diacritics: "Đặng Thị Hà" -> "Dang Thi Ha"."""
    value = value.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(ch for ch in decomposed
                   if not unicodedata.combining(ch) and 32 <= ord(ch) < 127)


def _pdf_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_content(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 11 Tf", "14 TL", "56 786 Td"]
    ops += [f"({_pdf_string(line)}) Tj T*" for line in lines]
    ops.append("ET")
    return ("\n".join(ops) + "\n").encode("ascii")


def _stream(content: bytes, compress: bool) -> bytes:
    if compress:
        content = zlib.compress(content, 9)
        head = f"<< /Length {len(content)} /Filter /FlateDecode >>"
    else:
        head = f"<< /Length {len(content)} >>"
    return head.encode("ascii") + b"\nstream\n" + content + b"\nendstream"


def pdf_bytes(lines: list[str], compress: bool = True) -> bytes:
    """A PDF 1.4 of A4 pages showing ``lines`` (wrapped, transliterated) in Helvetica 11."""
    wrapped = [part for line in lines
               for part in (textwrap.wrap(ascii_text(line), PDF_WRAP) or [""])]
    pages = [wrapped[i:i + PDF_LINES_PER_PAGE]
             for i in range(0, len(wrapped), PDF_LINES_PER_PAGE)] or [[]]
    # Objects: 1 catalog, 2 page tree, 3 font, 4 info, then a page and its content per page.
    page_ids = [5 + 2 * i for i in range(len(pages))]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] "
         f"/Count {len(pages)} >>").encode("ascii"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Producer (secops) /CreationDate (D:20260301080000Z) >>",
    ]
    for page_id, page in zip(page_ids, pages, strict=True):
        objects.append(
            (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
             f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
             ).encode("ascii"))
        objects.append(_stream(_page_content(page), compress))
    return _pdf(objects)


def pdf_jpeg_bytes(jpeg: bytes, width: int, height: int, *, gray: bool = False) -> bytes:
    """A one-page A4 PDF 1.4 of a scanned page, as a scanner writes it.

    The JPEG (``width`` x ``height`` pixels) is embedded unchanged (DCTDecode).
    """
    scale = min(595 / width, 842 / height)
    shown_w, shown_h = round(width * scale, 2), round(height * scale, 2)
    draw = f"q {shown_w} 0 0 {shown_h} 0 {round(842 - shown_h, 2)} cm /Im1 Do Q\n"
    space = "/DeviceGray" if gray else "/DeviceRGB"
    image = (f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
             f"/ColorSpace {space} /BitsPerComponent 8 /Filter /DCTDecode "
             f"/Length {len(jpeg)} >>").encode("ascii") + b"\nstream\n" + jpeg + b"\nendstream"
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
        image,
        b"<< /Producer (secops) /CreationDate (D:20260301080000Z) >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im1 3 0 R >> >> /Contents 6 0 R >>",
        _stream(draw.encode("ascii"), compress=False),
    ])


def _pdf(objects: list[bytes]) -> bytes:
    """Number ``objects`` from 1 (1 is the catalog, 4 the info) and add the xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += b"".join(f"{offset:010d} 00000 n \n".encode("ascii") for offset in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode("ascii")
    return bytes(out)
