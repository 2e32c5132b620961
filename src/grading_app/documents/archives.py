"""Zip safety for Word documents: bounded, lying-directory-proof reads before python-docx.

A .docx is a zip archive. Before python-docx opens one, its central directory is checked
(entry count, declared sizes, compression ratio, unsafe or duplicated paths, encrypted
parts), then every entry is inflated in chunks counting real bytes, so a directory that
lies about sizes cannot make anything inflate more than the limits.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass

from docx.opc.constants import CONTENT_TYPE as CT
from docx.oxml.parser import parse_xml

from grading_app.documents.errors import DocumentError, display_name, format_size

_WORD_CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_CHUNK = 64 * 1024


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


def open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
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


def check_docx_archive(data: bytes, *, filename: str, limits: ArchiveLimits = DOCX_LIMITS) -> None:
    """Refuse zip bombs and unsafe paths, then check the main part is a plain .docx."""
    with open_zip(data, filename) as archive:
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
