"""Check an upload before anything is stored: size, type by content, archive and PDF safety.

The type comes from the bytes, never from the extension: a Word document named
``essay.pdf`` is read as a Word document (with a warning from extraction), because the
content is unambiguous and rejecting it would only make the teacher rename the file.
Text named .docx or .pdf is the exception: it is refused as not being that type.
The extension only picks between "txt" and "md" once the content is known to be text.

``validate_upload`` does the structural checks (size, type, zip directory and a bounded
read of every zip entry, PDF encryption and page tree). ``extract_text`` runs it first
and then also refuses documents with no text, so it is the complete gate to call before
``store_upload``.
"""

from __future__ import annotations

import codecs
import io
import re
import zlib
from pathlib import PurePosixPath
from typing import NamedTuple

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

from grading_app.documents.archives import (
    check_docx_archive,
    open_zip,
)
from grading_app.documents.errors import (
    DocumentError,
    display_name,
    format_size,
)

SUPPORTED_TYPES = ("docx", "pdf", "txt", "md")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

_SUPPORTED_HINT = "Upload a Word document (.docx), a PDF, or a plain text or Markdown file."


# Magic numbers of files teachers plausibly upload by mistake, to say what they are.
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_KNOWN_BINARIES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
)
_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "docx": (".docx",),
    "pdf": (".pdf",),
    "txt": (".txt", ".text", ""),
    "md": (".md", ".markdown"),
}
_LABELS = {
    "docx": "a Word document",
    "pdf": "a PDF",
    "txt": "plain text",
    "md": "Markdown text",
}

# C0 and C1 control characters other than tab, newline, vertical tab, form feed and
# carriage return: plentiful in binary data, rare in real text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.05

# pypdf parses untrusted bytes in pure Python; a malformed file surfaces not only as
# PyPdfError but as whatever built-in error the parser hit on the way.
PDF_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    PyPdfError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    RecursionError,
    OverflowError,
    zlib.error,
)


class DecodedText(NamedTuple):
    text: str
    encoding: str


def decode_text(data: bytes) -> DecodedText | None:
    """Decode bytes as text, or None if they are not text.

    UTF-8 (with or without BOM) first, UTF-16 only with a BOM (Notepad's "Unicode"),
    then Windows-1252, the usual encoding of Western text saved on Windows, and last
    Latin-1, which decodes any byte but is then checked for control characters.
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return _text_or_none(data.decode(encoding), encoding)
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:
        return None
    for encoding in ("utf-8", "cp1252"):
        try:
            return _text_or_none(data.decode(encoding), encoding)
        except UnicodeDecodeError:
            continue
    return _text_or_none(data.decode("latin-1"), "latin-1")


def _text_or_none(text: str, encoding: str) -> DecodedText | None:
    if "\x00" in text:
        return None
    controls = len(_CONTROL_CHARS.findall(text))
    if controls > len(text) * _MAX_CONTROL_SHARE:
        return None
    return DecodedText(text, encoding)


def _suffix(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def extension_warning(file_type: str, filename: str) -> str | None:
    """A note when the name's extension does not match what the content turned out to be."""
    suffix = _suffix(filename)
    if suffix in _EXTENSIONS[file_type]:
        return None
    named = f"named {suffix}" if suffix else "has no extension"
    return (
        f"{display_name(filename)} is {named} but its content is {_LABELS[file_type]}; "
        f"it was read as {_LABELS[file_type]}."
    )


def detect_type(data: bytes, *, filename: str) -> str:
    """The file's type from its content: one of ``SUPPORTED_TYPES``."""
    name = display_name(filename)
    if not data:
        raise DocumentError(
            "empty",
            f"{name} is empty (0 bytes). Check that it was saved properly, then upload it again.",
            filename=filename,
        )
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _detect_zip(data, filename)
    # ISO 32000 lets readers accept the header anywhere in the first 1024 bytes, and
    # Acrobat does; some tools prepend a few bytes.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith(_OLE2):
        raise _ole2_error(data, filename)
    if data.startswith(b"{\\rtf"):
        raise DocumentError(
            "unsupported_type",
            f"{name} is a Rich Text (.rtf) file. Open it in Word and use Save As > "
            "Word Document (.docx), then upload that.",
            filename=filename,
        )
    for magic, what in _KNOWN_BINARIES:
        if data.startswith(magic):
            raise DocumentError(
                "unsupported_type",
                f"{name} is {what}, not a document. {_SUPPORTED_HINT} "
                "For a photo or scan of text, OCR it into a searchable PDF first.",
                filename=filename,
            )
    if decode_text(data) is None:
        raise DocumentError(
            "unsupported_type",
            f"{name} is not a Word document, PDF or text file (it contains binary data). "
            + _SUPPORTED_HINT,
            filename=filename,
        )
    if (claimed := _BINARY_BY_SUFFIX.get(_suffix(filename))) is not None:
        raise _text_posing_as(claimed, data, filename)
    return "md" if _suffix(filename) in _EXTENSIONS["md"] else "txt"


# Text named as a binary document is refused, unlike a Word document named .pdf: the
# file is not what its author thinks it is (a renamed note, a web page saved under the
# document's name), and grading its text would grade something else.
_BINARY_BY_SUFFIX = {".docx": "docx", ".pdf": "pdf"}


def _text_posing_as(claimed: str, data: bytes, filename: str) -> DocumentError:
    head = data[:512].lstrip().lower()
    looks = "a web page (HTML)" if head.startswith((b"<!doctype html", b"<html")) else "text"
    suffix = _suffix(filename)
    fix = (
        "Open it in Word and save it as Word Document (.docx)"
        if claimed == "docx"
        else "Export or print the document to PDF again"
    )
    return DocumentError(
        "not_its_type",
        f"{display_name(filename)} is not a {suffix} file: it is named {suffix} but holds "
        f"{looks}, not {_LABELS[claimed]}. {fix}, or if the text is what should be graded, "
        "rename it to .txt; then upload it again.",
        filename=filename,
    )


def _detect_zip(data: bytes, filename: str) -> str:
    with open_zip(data, filename) as archive:
        names = set(archive.namelist())
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
        what = "a zip archive"
        if "xl/workbook.xml" in names:
            what = "an Excel workbook"
        elif "ppt/presentation.xml" in names:
            what = "a PowerPoint presentation"
        elif "content.xml" in names and "mimetype" in names:
            what = "an OpenDocument file (LibreOffice/OpenOffice)"
    name = display_name(filename)
    if what.startswith("an OpenDocument"):
        advice = "Save it as Word Document (.docx) or export it as PDF, then upload that."
    elif what == "a zip archive":
        advice = "Unzip it and upload the documents inside it one by one."
    else:
        advice = "Export it as PDF, then upload that."
    raise DocumentError(
        "unsupported_type", f"{name} is {what}, not a document. {advice}", filename=filename
    )


def _ole2_error(data: bytes, filename: str) -> DocumentError:
    name = display_name(filename)
    # Word saves a password-protected .docx as an OLE2 container whose stream
    # "EncryptedPackage" holds the encrypted zip ([MS-OFFCRYPTO] 2.3.4.4); the stream
    # name is stored in UTF-16LE in the container's directory.
    if "EncryptedPackage".encode("utf-16-le") in data:
        return DocumentError(
            "encrypted_docx",
            f"{name} is a password-protected Word document. Open it in Word, remove the "
            "password (File > Info > Protect Document > Encrypt with Password, clear the "
            "box), save it, and upload it again.",
            filename=filename,
        )
    return DocumentError(
        "unsupported_type",
        f"{name} is an old-format Word document (.doc, Word 97-2003) or another legacy "
        "Office file. Open it and use Save As > Word Document (.docx), then upload that.",
        filename=filename,
    )


def validate_upload(data: bytes, *, filename: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Check one upload and return its type; raise ``DocumentError`` if it cannot be used."""
    if len(data) > max_bytes:
        raise too_large_error(filename, size=len(data), max_bytes=max_bytes)
    file_type = detect_type(data, filename=filename)
    if file_type == "docx":
        check_docx_archive(data, filename=filename)
    elif file_type == "pdf":
        if b"%%EOF" not in data[-1024:]:
            # Every complete PDF ends with %%EOF (ISO 32000 7.5.5); readers look for it in
            # the last 1024 bytes. Without it the file was almost certainly cut off, and
            # pypdf's recovery would silently lose the pages after the cut.
            raise DocumentError(
                "corrupt",
                f"{display_name(filename)} is an incomplete PDF (its end is missing); the "
                "upload or download was probably cut off. Open it on your computer to check "
                "it, export or download it again, and upload the new copy.",
                filename=filename,
            )
        open_pdf(data, filename=filename)
    return file_type


def too_large_error(filename: str, *, size: int, max_bytes: int) -> DocumentError:
    return DocumentError(
        "too_large",
        f"{display_name(filename)} is {format_size(size)}, more than the "
        f"{format_size(max_bytes)} upload limit. Make it smaller (for example compress or "
        "remove large images, or save it as PDF) or split it into parts, then upload again.",
        filename=filename,
    )


def open_pdf(data: bytes, *, filename: str) -> PdfReader:
    """Open a PDF, refusing encrypted and unreadable ones; the page tree is parsed here."""
    name = display_name(filename)
    encrypted = DocumentError(
        "encrypted_pdf",
        f"{name} is a password-protected PDF. Remove the password (open it with the "
        "password and save or print it to a new PDF without one), then upload it again.",
        filename=filename,
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        # PDFs with only an owner password (restricting printing or copying) open with
        # the empty user password in every viewer; read those, refuse the rest.
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise encrypted
        if len(reader.pages) == 0:
            raise DocumentError(
                "empty",
                f"{name} is a PDF with no pages. Export the document to PDF again and "
                "upload the new copy.",
                filename=filename,
            )
    except (FileNotDecryptedError, DependencyError) as exc:
        # DependencyError: AES encryption needs the optional `cryptography` package.
        raise encrypted from exc
    except LimitReachedError as exc:
        raise pdf_bomb_error(filename) from exc
    except PDF_PARSE_ERRORS as exc:
        raise DocumentError(
            "corrupt",
            f"{name} is a damaged PDF that cannot be read. "
            "Open it on your computer to check it, export or print it to a new PDF, and "
            "upload that.",
            filename=filename,
        ) from exc
    return reader


def pdf_bomb_error(filename: str) -> DocumentError:
    return DocumentError(
        "zip_bomb",
        f"{display_name(filename)} contains a compressed stream that expands beyond the safe "
        "limit. If it is a genuine document, print it to a new PDF and upload that.",
        filename=filename,
    )


# One upload request carries at most REQUEST_SIZE_FACTOR x MAX_UPLOAD_MB of files (256 MB
# by default), each file at most MAX_UPLOAD_MB; a zip's contents count the same.
REQUEST_SIZE_FACTOR = 16
# Room for the form's text fields and the multipart framing around the files.
_FORM_OVERHEAD_BYTES = 1024 * 1024


def request_limit_bytes(max_upload_bytes: int) -> int:
    return REQUEST_SIZE_FACTOR * max_upload_bytes + _FORM_OVERHEAD_BYTES
