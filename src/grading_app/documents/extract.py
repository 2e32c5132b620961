"""Plain text out of .docx, .pdf, .txt and .md files, for submissions and marking schemes.

PDF pages are joined with ``PAGE_SEPARATOR``, which holds the only form feed in the
text, so ``text.split("\\f")`` gives one item per page.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import docx
from docx.document import Document as WordDocument
from docx.exceptions import PythonDocxError
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.exceptions import OpcError
from docx.oxml.parser import parse_xml
from pypdf.errors import LimitReachedError

from grading_app.documents.validate import (
    DEFAULT_MAX_BYTES,
    PDF_PARSE_ERRORS,
    DocumentError,
    decode_text,
    display_name,
    extension_warning,
    open_pdf,
    pdf_bomb_error,
    too_large_error,
    validate_upload,
)

PAGE_SEPARATOR = "\n\f\n"

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"

# Subtrees whose text is not part of the document as it reads: properties, deleted and
# moved-away revisions, field codes, and the legacy copy of a drawing that Word keeps
# beside the modern one inside mc:AlternateContent.
SKIPPED_ELEMENTS = frozenset(
    {
        f"{_W}pPr",
        f"{_W}rPr",
        f"{_W}del",
        f"{_W}moveFrom",
        f"{_W}instrText",
        f"{_W}delText",
        f"{_MC}Fallback",
    }
)
# Containers of paragraphs and tables (content controls, custom XML) to look through.
BLOCK_WRAPPERS = frozenset({f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml"})
_NOTE_SEPARATORS = frozenset({"separator", "continuationSeparator", "continuationNotice"})

# A token with a letter or digit ([^\W_] is str.isalnum), matched from its start only
# (the lookbehind) and consumed whole (possessive), so no position is tried twice and
# a long run of "=====" costs one pass. The empty group makes findall return the one
# shared empty string per word rather than a copy of it.
_WORD = re.compile(r"(?<!\S)(?:[^\s\w]|_)*+[^\W_]\S*+()")
_WHITESPACE = re.compile(r"\s")
_COUNT_SLICE = 1 << 20
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class ExtractedDocument:
    text: str
    file_type: str
    page_count: int | None
    warnings: tuple[str, ...]

    @cached_property
    def word_count(self) -> int:
        """Counted when asked, not on every upload: nothing on the upload path reads it,
        and it was most of the time a large text took to read."""
        return count_words(self.text)


def extract_file(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, name: str | None = None
) -> ExtractedDocument:
    """Extract a file on disk; its size is checked before a byte is read. `name`, the
    document's name as the user knows it, is what messages say (default: the file's)."""
    name = name or path.name
    size = path.stat().st_size
    if size > max_bytes:
        raise too_large_error(name, size=size, max_bytes=max_bytes)
    with path.open("rb") as handle:
        # Read one byte past the limit so a file that grew since stat() is still refused.
        data = handle.read(max_bytes + 1)
    return extract_text(data, filename=name, max_bytes=max_bytes)


def extract_text(
    data: bytes, *, filename: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> ExtractedDocument:
    """Validate one upload and return its text; raise ``DocumentError`` if it has none."""
    file_type = validate_upload(data, filename=filename, max_bytes=max_bytes)
    warnings: list[str] = []
    if (mismatch := extension_warning(file_type, filename)) is not None:
        warnings.append(mismatch)
    page_count: int | None = None
    if file_type == "docx":
        text = _docx_text(data, filename, warnings)
    elif file_type == "pdf":
        text, page_count = _pdf_text(data, filename, warnings)
    else:
        text = _plain_text(data, filename, warnings)
    if not text.strip():
        raise _no_text_error(file_type, filename)
    return ExtractedDocument(
        text=text,
        file_type=file_type,
        page_count=page_count,
        warnings=tuple(warnings),
    )


def count_words(text: str) -> int:
    """Whitespace-separated tokens holding a letter or digit, so table rules ("|"),
    bullets and dashes are not counted as words.

    One regex pass a slice at a time: `text.split()` made an object per token (a 16 MB
    essay took 3.5 s and 200 MB), this makes none and holds a slice's matches at most."""
    count, start, end = 0, 0, len(text)
    while start < end:
        stop = min(end, start + _COUNT_SLICE)
        # Slices end at whitespace, so no token is counted twice or cut in two.
        space = _WHITESPACE.search(text, stop) if stop < end else None
        stop = space.start() if space else end
        count += len(_WORD.findall(text, start, stop))
        start = stop
    return count


def _no_text_error(file_type: str, filename: str) -> DocumentError:
    name = display_name(filename)
    if file_type == "pdf":
        message = (
            f"{name} has no extractable text; is it a scanned image? OCR it first (for "
            "example with your scanner's software or a PDF editor's 'Recognize text'), "
            "then upload the searchable PDF."
        )
    elif file_type == "docx":
        message = (
            f"{name} contains no text (only images or shapes?). If the text is in a picture "
            "of a page, type it or OCR it into the document, then upload it again."
        )
    else:
        message = f"{name} contains only blank space. Upload the file that holds the text."
    return DocumentError("no_text", message, filename=filename)


def _tidy(text: str) -> str:
    """Unify line ends, drop control characters and runs of blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n")
    text = _CONTROL_CHARS.sub("", unicodedata.normalize("NFC", text))
    # The regexes try every space or line end; a plain search (much faster) says first
    # whether there is anything for them to do.
    if " \n" in text or "\t\n" in text:  # the strip below takes a last line's
        text = _TRAILING_SPACE.sub("\n", text + "\n")
    if "\n\n\n" in text:
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def _plain_text(data: bytes, filename: str, warnings: list[str]) -> str:
    decoded = decode_text(data)
    if decoded is None:  # validate_upload already refused binary data
        raise DocumentError(
            "unsupported_type", f"{display_name(filename)} is not text.", filename=filename
        )
    fallback = {"cp1252": "Windows-1252", "latin-1": "Latin-1"}.get(decoded.encoding)
    if fallback is not None:
        warnings.append(
            f"{display_name(filename)} is not UTF-8; it was read as {fallback}. If some "
            "characters look wrong, save it as UTF-8 and upload it again."
        )
    return _tidy(decoded.text)


def _pdf_text(data: bytes, filename: str, warnings: list[str]) -> tuple[str, int]:
    reader = open_pdf(data, filename=filename)
    pages: list[str] = []
    blank: list[int] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            page_text = _tidy(page.extract_text())
        except LimitReachedError as exc:
            raise pdf_bomb_error(filename) from exc
        except PDF_PARSE_ERRORS:
            # One broken page should not cost the rest of the essay.
            warnings.append(f"Page {number} could not be read and was skipped.")
            page_text = ""
        if not page_text:
            blank.append(number)
        pages.append(page_text)
    if blank and len(blank) < len(pages):
        listed = ", ".join(str(n) for n in blank[:20]) + (", ..." if len(blank) > 20 else "")
        warnings.append(
            f"Page(s) {listed} have no extractable text (blank, or scanned images?); their "
            "content is not included. OCR the PDF first if those pages hold text."
        )
    return PAGE_SEPARATOR.join(pages), len(pages)


def _docx_text(data: bytes, filename: str, warnings: list[str]) -> str:
    name = display_name(filename)
    try:
        document = docx.Document(io.BytesIO(data))
    except ValueError as exc:
        # python-docx refuses a main part that is not a plain document (docm, dotx).
        raise DocumentError(
            "unsupported_type",
            f"{name} is not a standard Word document. Open it in Word and use Save As > "
            "Word Document (.docx), then upload that.",
            filename=filename,
        ) from exc
    except (zipfile.BadZipFile, KeyError, SyntaxError, OpcError, PythonDocxError) as exc:
        # SyntaxError covers lxml's XMLSyntaxError for a malformed part.
        raise _damaged_docx(filename) from exc
    try:
        return _tidy(_docx_sections(document, warnings, name))
    except (SyntaxError, ValueError, KeyError, RecursionError, PythonDocxError) as exc:
        raise _damaged_docx(filename) from exc


def _damaged_docx(filename: str) -> DocumentError:
    return DocumentError(
        "corrupt",
        f"{display_name(filename)} is a damaged Word document that cannot be read. Open it "
        "in Word to check it, save it again, and upload the new copy.",
        filename=filename,
    )


def _docx_sections(document: WordDocument, warnings: list[str], name: str) -> str:
    """Headers, body, footers, then footnotes and endnotes, as blocks of text."""
    body = document.element.body
    headers, footers = _headers_and_footers(document)
    chunks = [*headers, "\n".join(_blocks(body)), *footers]
    for reltype, title in ((RT.FOOTNOTES, "Footnotes"), (RT.ENDNOTES, "Endnotes")):
        notes = _notes(document, reltype)
        if notes:
            lines = [f"[{n}] {note}" for n, note in enumerate(notes, start=1)]
            chunks.append(f"{title}:\n" + "\n".join(lines))
    revisions = next(body.iter(f"{_W}ins", f"{_W}del", f"{_W}moveTo", f"{_W}moveFrom"), None)
    if revisions is not None:
        warnings.append(
            f"{name} has tracked changes; the text was read with all changes accepted. "
            "If that is not the version to grade, accept or reject the changes in Word "
            "(Review > Accept/Reject) and upload it again."
        )
    return "\n\n".join(chunk for chunk in chunks if chunk.strip())


def _headers_and_footers(document: WordDocument) -> tuple[list[str], list[str]]:
    """Texts of the headers and footers Word shows, each distinct text once."""
    odd_even = document.settings.odd_and_even_pages_header_footer
    headers: list[str] = []
    footers: list[str] = []
    for section in document.sections:
        first = section.different_first_page_header_footer
        for shown, header, footer in (
            (first, section.first_page_header, section.first_page_footer),
            (True, section.header, section.footer),
            (odd_even, section.even_page_header, section.even_page_footer),
        ):
            if not shown:
                continue
            for part_proxy, out in ((header, headers), (footer, footers)):
                # A linked header/footer has no definition of its own; asking for its
                # part would add an empty one.
                if part_proxy.is_linked_to_previous:
                    continue
                text = "\n".join(_blocks(part_proxy.part.element)).strip()
                if text and text not in out:
                    out.append(text)
    return headers, footers


def _notes(document: WordDocument, reltype: str) -> list[str]:
    """Footnote or endnote texts; python-docx has no API for them, so read the part the
    main document points to through its relationships and parse it ourselves."""
    texts: list[str] = []
    for rel in document.part.rels.values():
        if rel.is_external or rel.reltype != reltype:
            continue
        root = parse_xml(rel.target_part.blob)
        for note in root:
            if note.get(f"{_W}type") in _NOTE_SEPARATORS:
                continue
            text = "\n".join(_blocks(note)).strip()
            if text:
                texts.append(text)
    return texts


def _blocks(element: Any) -> Iterator[str]:
    """Text of each paragraph and table directly in ``element``, in document order."""
    for child in element:
        tag = child.tag
        if tag == f"{_W}p":
            yield _paragraph_text(child)
        elif tag == f"{_W}tbl":
            yield _table_text(child)
        elif tag in BLOCK_WRAPPERS:
            yield from _blocks(child)


def _table_text(table: Any) -> str:
    """One line per row, cells separated by " | "."""
    return "\n".join(" | ".join(cells) for cells in _table_rows(table))


def _table_rows(table: Any) -> list[list[str]]:
    """Each row's cell texts, whitespace collapsed."""
    return [
        [" ".join(" ".join(_blocks(cell)).split()) for cell in _children(row, f"{_W}tc")]
        for row in _children(table, f"{_W}tr")
    ]


def docx_tables(data: bytes) -> list[list[list[str]]]:
    """The tables of a Word document's body in order, each as rows of cell texts (a
    marking scheme's rubric is often one). Nothing for a document python-docx cannot
    open: `extract_text` is the one that says why."""
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
        return [_table_rows(table) for table in body.iter(f"{_W}tbl")]
    except (ValueError, zipfile.BadZipFile, KeyError, SyntaxError, OpcError, PythonDocxError):
        return []


def _children(element: Any, tag: str) -> Iterator[Any]:
    """Children with ``tag``, looking through content controls that wrap rows or cells."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag in BLOCK_WRAPPERS:
            yield from _children(child, tag)


def _paragraph_text(paragraph: Any) -> str:
    """Text of one paragraph.

    python-docx's ``Paragraph.text`` reads only direct runs and hyperlinks, so it loses
    tracked insertions, inline content controls, simple fields and text boxes; walk the
    whole paragraph instead, skipping what ``SKIPPED_ELEMENTS`` names.
    """
    out: list[str] = []
    _inline_text(paragraph, out)
    return "".join(out)


def _inline_text(element: Any, out: list[str]) -> None:
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in SKIPPED_ELEMENTS:  # comments have a non-str tag
            continue
        if tag in (f"{_W}t", f"{_M}t"):
            out.append(child.text or "")
        elif tag in (f"{_W}tab", f"{_W}ptab"):
            out.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            out.append("\n")
        elif tag == f"{_W}noBreakHyphen":
            out.append("-")
        elif tag == f"{_W}txbxContent":
            out.append("\n" + "\n".join(_blocks(child)) + "\n")
        else:
            _inline_text(child, out)
