"""Real .docx, .pdf and zip files built in memory for the documents tests."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import docx
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml.parser import parse_xml
from fpdf import FPDF
from PIL import Image
from pypdf import PdfWriter

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    "</Types>"
)


def _notes_xml(kind: str, texts: Sequence[str]) -> bytes:
    """A footnotes.xml/endnotes.xml with Word's two separator notes, then ``texts``."""
    notes = [
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>',
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r>'
        f"<w:continuationSeparator/></w:r></w:p></w:{kind}>",
    ]
    for number, text in enumerate(texts, start=1):
        notes.append(
            f'<w:{kind} w:id="{number}"><w:p><w:r><w:{kind}Ref/></w:r>'
            f'<w:r><w:t xml:space="preserve"> {text}</w:t></w:r></w:p></w:{kind}>'
        )
    return (f'<w:{kind}s xmlns:w="{W_NS}">' + "".join(notes) + f"</w:{kind}s>").encode()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_docx(
    *,
    paragraphs: Sequence[str] = ("The thesis of this essay is simple.", "Naïve café — ünïcödé ✓"),
    table: Sequence[Sequence[str]] | None = (("Criterion", "Score"), ("Argument", "8/10")),
    header: str | None = "Student: Ada Lovelace",
    footer: str | None = "Page footer text",
    footnotes: Sequence[str] = (),
    endnotes: Sequence[str] = (),
    image_only: bool = False,
    body_xml: Sequence[str] = (),
) -> bytes:
    """A .docx made by python-docx; ``body_xml`` appends raw WordprocessingML blocks."""
    document = docx.Document()
    if image_only:
        document.add_picture(io.BytesIO(png_bytes()))
    else:
        for text in paragraphs:
            document.add_paragraph(text)
        if table:
            grid = document.add_table(rows=len(table), cols=len(table[0]))
            for row, values in zip(grid.rows, table, strict=True):
                for cell, value in zip(row.cells, values, strict=True):
                    cell.text = value
    section = document.sections[0]
    if header is not None:
        section.header.paragraphs[0].text = header
    if footer is not None:
        section.footer.paragraphs[0].text = footer
    package = document.part.package
    for kind, texts, content_type, reltype in (
        ("footnote", footnotes, CT.WML_FOOTNOTES, RT.FOOTNOTES),
        ("endnote", endnotes, CT.WML_ENDNOTES, RT.ENDNOTES),
    ):
        if texts:
            part = Part(
                PackURI(f"/word/{kind}s.xml"), content_type, _notes_xml(kind, texts), package
            )
            document.part.relate_to(part, reltype)
    body = document.element.body
    for xml in body_xml:
        # Insert before the final w:sectPr, where Word keeps body content.
        body.insert(len(body) - 1, parse_xml(f'<w:root xmlns:w="{W_NS}">{xml}</w:root>')[0])
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rewrite_zip(
    data: bytes, *, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None
) -> bytes:
    """Copy a zip, replacing some entries' contents and appending new entries."""
    replace = replace or {}
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info)))
        for name, content in (add or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def make_zip(entries: dict[str, bytes], *, minimal_docx: bool = False) -> bytes:
    """A zip of ``entries``; with ``minimal_docx`` it also has the two parts that mark a .docx."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if minimal_docx:
            archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
            archive.writestr("word/document.xml", f'<w:document xmlns:w="{W_NS}"/>')
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def write_zip_bomb(path: Path, *, megabytes: int = 200) -> bytes:
    """A .docx-looking zip whose document.xml is ``megabytes`` of zeros.

    The entry is written in 1 MB chunks so neither the test nor zipfile ever holds the
    uncompressed data; deflate shrinks it about 1000 times.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            chunk = bytes(1024 * 1024)
            for _ in range(megabytes):
                entry.write(chunk)
    return path.read_bytes()


def make_pdf(
    pages: Sequence[str] = ("First page: the introduction.", "Second page: café."),
) -> bytes:
    """A text PDF with one page per item (fpdf2's core fonts cover Latin-1)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(w=0, text=text)
    return bytes(pdf.output())


def make_image_pdf() -> bytes:
    """A PDF whose only page is a picture, like a scan that was never OCR'd."""
    pdf = FPDF()
    pdf.add_page()
    pdf.image(io.BytesIO(png_bytes()), x=10, y=10, w=100)
    return bytes(pdf.output())


def encrypt_pdf(
    data: bytes,
    *,
    user_password: str,
    owner_password: str | None = None,
    algorithm: str | None = None,
) -> bytes:
    """`algorithm` None is pypdf's default, RC4-128; "AES-128" and "AES-256" (what
    current PDF editors write) need the `cryptography` package, to write and to read."""
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password, owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
