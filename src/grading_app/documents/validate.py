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
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, NamedTuple

from docx.opc.constants import CONTENT_TYPE as CT
from docx.oxml.parser import parse_xml
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

from grading_app.errors import BadRequest

SUPPORTED_TYPES = ("docx", "pdf", "txt", "md")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

DocumentErrorCode = Literal[
    "too_large",
    "empty",
    "unsupported_type",
    "encrypted_pdf",
    "encrypted_docx",
    "corrupt",
    "zip_bomb",
    "unsafe_archive",
    "no_text",
    "not_its_type",
]

_SUPPORTED_HINT = "Upload a Word document (.docx), a PDF, or a plain text or Markdown file."


class DocumentError(BadRequest):
    """One uploaded file cannot be used; ``code`` says why for machines, ``message`` for people."""

    def __init__(self, code: DocumentErrorCode, message: str, *, filename: str = "") -> None:
        super().__init__(message)
        self.code: DocumentErrorCode = code
        self.filename = filename


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what a .docx may unpack to; a real essay is far below every one."""

    max_entries: int = 2000
    max_total_bytes: int = 100 * 1024 * 1024
    # Word's XML compresses roughly 5-20x; zeros or repeated bytes reach 1000x.
    max_ratio: int = 100
    # The ratio test only applies to entries bigger than this, so tiny, very repetitive
    # parts (an empty settings.xml) cannot trip it.
    ratio_floor_bytes: int = 1024 * 1024


DOCX_LIMITS = ArchiveLimits()

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

_WORD_CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_CHUNK = 64 * 1024


class DecodedText(NamedTuple):
    text: str
    encoding: str


def display_name(filename: str) -> str:
    """The file's own name, quoted, for messages; browsers may send a full Windows path."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        return "The file"
    if len(name) > 80:
        name = name[:77] + "..."
    return f'"{name}"'


def format_size(size: int) -> str:
    """A size the way a teacher reads it: 16 MB, 350 KB, 12 bytes."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            value = f"{size / scale:.1f}".removesuffix(".0")
            return f"{value} {unit}"
    return f"{size} bytes"


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


def _open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise DocumentError(
            "corrupt",
            f"{display_name(filename)} is a damaged or incomplete Word document or zip file; "
            "the upload may have been cut off. Open it on your computer to check it, save it "
            "again from Word, and upload the new copy.",
            filename=filename,
        ) from exc


def _detect_zip(data: bytes, filename: str) -> str:
    with _open_zip(data, filename) as archive:
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


def check_docx_archive(data: bytes, *, filename: str, limits: ArchiveLimits = DOCX_LIMITS) -> None:
    """Refuse zip bombs and unsafe paths, then check the main part is a plain .docx."""
    with _open_zip(data, filename) as archive:
        infos = archive.infolist()
        check_zip_directory(infos, archive_size=len(data), filename=filename, limits=limits)
        read_zip_bounded(archive, filename=filename, limits=limits)
        content_types = archive.read("[Content_Types].xml")
    _check_main_content_type(content_types, filename)


def _bomb(filename: str, detail: str) -> DocumentError:
    return DocumentError(
        "zip_bomb",
        f"{display_name(filename)} {detail}, beyond the safe limit for a Word document, so it "
        "was not opened. If it is a genuine document, remove large embedded files or "
        "images, save it again from Word, and upload it.",
        filename=filename,
    )


def _unsafe_entry(name: str) -> bool:
    # Entries are only ever read in memory, but a name that could escape a folder on
    # extraction is never written by Word and marks a crafted file.
    parts = name.split("/")
    return (
        "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
    )


def check_zip_directory(
    infos: list[zipfile.ZipInfo],
    *,
    archive_size: int,
    filename: str,
    limits: ArchiveLimits = DOCX_LIMITS,
) -> None:
    """Checks made from the zip's central directory alone, before any entry is inflated."""
    name = display_name(filename)
    if len(infos) > limits.max_entries:
        raise _bomb(filename, f"has {len(infos)} parts (more than {limits.max_entries})")
    seen: set[str] = set()
    for info in infos:
        if _unsafe_entry(info.filename) or info.filename in seen:
            raise DocumentError(
                "unsafe_archive",
                f"{name} contains an unsafe or duplicated path ({info.filename!r}), which "
                "Word never writes, so it was rejected for safety. Save the document again "
                "from Word and upload the new copy.",
                filename=filename,
            )
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise DocumentError(
                "encrypted_docx",
                f"{name} contains encrypted parts. Remove any password or encryption, save "
                "it again from Word as .docx, and upload the new copy.",
                filename=filename,
            )
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise _bomb(filename, f"would unpack to {format_size(total)}")
    for info in infos:
        if info.file_size > limits.ratio_floor_bytes and (
            info.file_size > limits.max_ratio * info.compress_size
        ):
            raise _bomb(
                filename,
                f"has a part ({info.filename}) compressed more than {limits.max_ratio} to 1",
            )
    # Entries that share compressed bytes (overlapping-entry zip bombs) add up to more
    # compressed data than the file holds.
    if sum(info.compress_size for info in infos) > archive_size:
        raise _bomb(filename, "has overlapping parts")


def read_zip_bounded(
    archive: zipfile.ZipFile, *, filename: str, limits: ArchiveLimits = DOCX_LIMITS
) -> None:
    """Inflate every entry in chunks, counting real bytes, so a directory that lies about
    sizes cannot make us (or python-docx after us) inflate more than the limits."""
    total = 0
    for info in archive.infolist():
        if info.is_dir():
            continue
        size = 0
        try:
            with archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if size > info.file_size:
                        raise _bomb(filename, f"has a part ({info.filename}) bigger than declared")
                    if total > limits.max_total_bytes:
                        raise _bomb(filename, f"unpacks to more than {format_size(total)}")
                    if size > limits.ratio_floor_bytes and (
                        size > limits.max_ratio * max(info.compress_size, 1)
                    ):
                        raise _bomb(
                            filename,
                            f"has a part ({info.filename}) compressed more than "
                            f"{limits.max_ratio} to 1",
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
            # A CRC mismatch also lands here when the directory under-declares a size:
            # zipfile stops at the declared size and the checksum no longer matches.
            raise DocumentError(
                "corrupt",
                f"{display_name(filename)} is a damaged Word document (part {info.filename!r} "
                "cannot be read). Open it in Word to check it, save it again, and upload the "
                "new copy.",
                filename=filename,
            ) from exc


def _check_main_content_type(content_types: bytes, filename: str) -> None:
    name = display_name(filename)
    try:
        root = parse_xml(content_types)
    except SyntaxError as exc:  # lxml's XMLSyntaxError is a SyntaxError
        raise DocumentError(
            "corrupt",
            f"{name} is a damaged Word document (its content list is not valid XML). Open "
            "it in Word, save it again, and upload the new copy.",
            filename=filename,
        ) from exc
    content_type = None
    for override in root.iter(f"{{{_WORD_CONTENT_TYPES}}}Override"):
        if override.get("PartName", "").lower() == "/word/document.xml":
            content_type = override.get("ContentType")
    if content_type is None or content_type == CT.WML_DOCUMENT_MAIN:
        # Missing: let python-docx judge the package when the text is read.
        return
    kind = "a macro-enabled Word document" if "macroEnabled" in content_type else None
    if kind is None:
        kind = "a Word template" if "template" in content_type else "not a standard .docx"
    raise DocumentError(
        "unsupported_type",
        f"{name} is {kind}. Open it in Word and use Save As > Word Document (.docx), then "
        "upload that.",
        filename=filename,
    )


# One upload request carries at most REQUEST_SIZE_FACTOR x MAX_UPLOAD_MB of files (256 MB
# by default), each file at most MAX_UPLOAD_MB; a zip's contents count the same.
REQUEST_SIZE_FACTOR = 16
# Room for the form's text fields and the multipart framing around the files.
_FORM_OVERHEAD_BYTES = 1024 * 1024


def request_limit_bytes(max_upload_bytes: int) -> int:
    return REQUEST_SIZE_FACTOR * max_upload_bytes + _FORM_OVERHEAD_BYTES
