"""Upload validation: size, type by content, zip and PDF safety, each with a specific code."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from grading_app.documents.archives import ArchiveLimits, check_zip_directory, read_zip_bounded
from grading_app.documents.validate import (
    DocumentError,
    decode_text,
    detect_type,
    validate_upload,
)
from grading_app.errors import BadRequest
from tests.documents.factories import (
    encrypt_pdf,
    make_docx,
    make_pdf,
    make_zip,
    rewrite_zip,
    write_zip_bomb,
)


def _error(data: bytes, filename: str, **kwargs: int) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        validate_upload(data, filename=filename, **kwargs)
    return caught.value


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_zip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.docx")


def test_document_error_is_a_bad_request_with_a_code() -> None:
    error = _error(b"", "essay.txt")
    assert isinstance(error, BadRequest)
    assert error.status_code == 400
    assert error.code == "empty"
    assert error.filename == "essay.txt"


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (make_docx(), "essay.docx", "docx"),
        (make_pdf(), "essay.pdf", "pdf"),
        (b"Plain words.\n", "essay.txt", "txt"),
        (b"# Title\n\nBody.\n", "essay.md", "md"),
        (b"# Title\n\nBody.\n", "notes.markdown", "md"),
        (b"no extension here", "README", "txt"),
    ],
)
def test_detect_type_reads_the_content(data: bytes, filename: str, expected: str) -> None:
    assert detect_type(data, filename=filename) == expected


def test_docx_named_pdf_is_detected_as_docx() -> None:
    assert detect_type(make_docx(), filename="essay.pdf") == "docx"
    assert validate_upload(make_docx(), filename="essay.pdf") == "docx"


def test_pdf_named_docx_is_detected_as_pdf() -> None:
    assert detect_type(make_pdf(), filename="essay.docx") == "pdf"


@pytest.mark.parametrize(
    ("data", "filename", "holds", "fix"),
    [
        (b"My essay, typed in Notepad.\n", "essay.docx", "holds text, not a Word document", "Word"),
        (b"Plain words only.", "Essay.PDF", "holds text, not a PDF", "PDF again"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "essay.pdf", "a web page", "PDF"),
    ],
)
def test_text_named_docx_or_pdf_is_reported_as_not_that_type(
    data: bytes, filename: str, holds: str, fix: str
) -> None:
    error = _error(data, filename)
    assert error.code == "not_its_type"
    suffix = filename.rsplit(".", 1)[1].lower()
    assert error.message.startswith(f'"{filename}" is not a .{suffix} file')
    assert holds in error.message and fix in error.message and "rename it to .txt" in error.message


def test_pdf_header_after_a_few_leading_bytes_is_still_a_pdf() -> None:
    assert detect_type(b"\r\n\r\n" + make_pdf(), filename="scan.pdf") == "pdf"


def test_too_large_names_the_limit_and_what_to_do() -> None:
    error = _error(make_pdf(), "essay.pdf", max_bytes=100)
    assert error.code == "too_large"
    assert "more than the 100 bytes upload limit" in error.message
    assert "split it" in error.message


def test_default_limit_is_16_mb() -> None:
    error = _error(b"a" * (16 * 1024 * 1024 + 1), "big.txt")
    assert error.code == "too_large"
    assert "16 MB upload limit" in error.message
    assert validate_upload(b"a" * 1000, filename="small.txt") == "txt"


def test_empty_file() -> None:
    error = _error(b"", "C:\\fakepath\\essay.docx")
    assert error.code == "empty"
    assert error.message.startswith('"essay.docx" is empty (0 bytes)')
    assert "upload it again" in error.message


@pytest.mark.parametrize(
    ("data", "expected_words"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "a PNG image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "a JPEG image"),
        (b"{\\rtf1\\ansi Hello}", "Rich Text (.rtf)"),
        (bytes(range(1, 256)) * 20, "contains binary data"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100, "contains binary data"),
    ],
)
def test_unsupported_content_is_named(data: bytes, expected_words: str) -> None:
    error = _error(data, "upload.docx")
    assert error.code == "unsupported_type"
    assert expected_words in error.message


def test_legacy_doc_asks_for_save_as_docx() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    error = _error(ole2, "essay.doc")
    assert error.code == "unsupported_type"
    assert "Save As > Word Document (.docx)" in error.message


def test_password_protected_docx_is_recognised() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64
    ole2 += "EncryptedPackage".encode("utf-16-le") + b"\x00" * 64
    error = _error(ole2, "essay.docx")
    assert error.code == "encrypted_docx"
    assert "remove the password" in error.message


@pytest.mark.parametrize(
    ("entries", "what"),
    [
        ({"xl/workbook.xml": b"<x/>", "[Content_Types].xml": b"<x/>"}, "an Excel workbook"),
        ({"ppt/presentation.xml": b"<x/>"}, "a PowerPoint presentation"),
        (
            {"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"},
            "an OpenDocument",
        ),
        ({"essay1.docx": b"...", "essay2.docx": b"..."}, "a zip archive"),
    ],
)
def test_zips_that_are_not_word_documents(entries: dict[str, bytes], what: str) -> None:
    error = _error(make_zip(entries), "upload.docx")
    assert error.code == "unsupported_type"
    assert what in error.message


def test_macro_enabled_docx_is_refused_with_save_as_advice() -> None:
    data = make_docx()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        types = archive.read("[Content_Types].xml")
    docm_types = types.replace(
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        b"application/vnd.ms-word.document.macroEnabled.main+xml",
    )
    assert docm_types != types
    error = _error(rewrite_zip(data, replace={"[Content_Types].xml": docm_types}), "essay.docm")
    assert error.code == "unsupported_type"
    assert "macro-enabled Word document" in error.message
    assert "Save As > Word Document (.docx)" in error.message


# --- text decoding ---


def test_decode_text_handles_boms_and_windows_text() -> None:
    assert decode_text("\ufeffcafé".encode()) == ("café", "utf-8-sig")
    assert decode_text("café".encode()) == ("café", "utf-8")
    assert decode_text("“café” – €5".encode("cp1252")) == ("“café” – €5", "cp1252")
    assert decode_text("\ufeffcafé".encode("utf-16-le")) == ("café", "utf-16")
    # 0x81 is undefined in Windows-1252, so Latin-1 takes over.
    text = b"caf\xe9 \x81" + b" and plain words" * 3
    assert decode_text(text) == ("café \x81" + " and plain words" * 3, "latin-1")


def test_decode_text_refuses_nul_bytes_and_control_noise() -> None:
    assert decode_text(b"text\x00with a nul") is None
    assert decode_text(bytes(range(1, 32)) * 10) is None


# --- PDFs ---


def test_encrypted_pdf() -> None:
    error = _error(encrypt_pdf(make_pdf(), user_password="secret"), "essay.pdf")
    assert error.code == "encrypted_pdf"
    assert "password-protected PDF" in error.message
    assert "Remove the password" in error.message


def test_pdf_with_only_an_owner_password_is_accepted() -> None:
    data = encrypt_pdf(make_pdf(), user_password="", owner_password="owner")
    assert validate_upload(data, filename="restricted.pdf") == "pdf"


def test_truncated_pdf() -> None:
    data = make_pdf()
    error = _error(data[: len(data) // 2], "essay.pdf")
    assert error.code == "corrupt"
    assert "incomplete PDF" in error.message
    assert "upload the new copy" in error.message


def test_pdf_with_a_broken_body_is_corrupt() -> None:
    data = make_pdf()
    # Keep the header and the %%EOF trailer, destroy everything between.
    broken = data[:15] + b"\x00garbage" * 20 + data[-6:]
    error = _error(broken, "essay.pdf")
    assert error.code == "corrupt"
    assert "damaged PDF" in error.message


# --- .docx archives ---


def test_truncated_docx() -> None:
    data = make_docx()
    error = _error(data[: len(data) // 2], "essay.docx")
    assert error.code == "corrupt"
    assert "damaged or incomplete" in error.message
    assert "save it again" in error.message


def test_zip_bomb_is_refused_from_the_directory(zip_bomb: bytes) -> None:
    assert len(zip_bomb) < 1024 * 1024  # 200 MB of zeros, deflated
    error = _error(zip_bomb, "essay.docx")
    assert error.code == "zip_bomb"
    assert "would unpack to 200 MB" in error.message
    assert "remove large embedded files" in error.message


def test_highly_compressed_part_is_refused() -> None:
    data = make_zip({"word/media/blob.bin": bytes(5 * 1024 * 1024)}, minimal_docx=True)
    error = _error(data, "essay.docx")
    assert error.code == "zip_bomb"
    assert "compressed more than 100 to 1" in error.message


def test_too_many_entries_is_refused() -> None:
    entries = {f"word/media/image{i}.png": b"x" for i in range(2001)}
    error = _error(make_zip(entries, minimal_docx=True), "essay.docx")
    assert error.code == "zip_bomb"
    assert "2003 parts" in error.message


def test_reading_is_bounded_even_when_the_directory_passes() -> None:
    data = make_docx()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        declared = sum(info.file_size for info in archive.infolist())
        limits = ArchiveLimits(max_total_bytes=declared // 2)
        with pytest.raises(DocumentError) as caught:
            read_zip_bounded(archive, filename="essay.docx", limits=limits)
    assert caught.value.code == "zip_bomb"
    assert "unpacks to more than" in caught.value.message


def test_directory_that_understates_a_size_is_caught_while_reading() -> None:
    data = bytearray(make_zip({"word/media/big.bin": bytes(500_000)}, minimal_docx=True))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("word/media/big.bin")
    # Claim 1000 bytes in the local header and the central directory.
    struct.pack_into("<I", data, info.header_offset + 22, 1000)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == b"word/media/big.bin":
            struct.pack_into("<I", data, central + 24, 1000)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        assert archive.getinfo("word/media/big.bin").file_size == 1000
    # zipfile stops at the declared size, so the lie shows up as a checksum failure.
    error = _error(bytes(data), "essay.docx")
    assert error.code == "corrupt"
    assert "'word/media/big.bin' cannot be read" in error.message


def test_overlapping_entries_are_refused() -> None:
    infos = []
    for name in ("a.xml", "b.xml", "c.xml"):
        info = zipfile.ZipInfo(name)
        info.file_size, info.compress_size = 500, 400
        infos.append(info)
    with pytest.raises(DocumentError) as caught:
        check_zip_directory(infos, archive_size=600, filename="essay.docx")
    assert caught.value.code == "zip_bomb"
    assert "overlapping parts" in caught.value.message


@pytest.mark.parametrize(
    "entry",
    ["../evil.txt", "word/../../evil.txt", "/etc/evil.txt", "word\\..\\evil.txt", "C:/evil.txt"],
)
def test_unsafe_paths_are_refused(entry: str) -> None:
    error = _error(make_zip({entry: b"evil"}, minimal_docx=True), "essay.docx")
    assert error.code == "unsafe_archive"
    assert repr(entry) in error.message
    assert "Save the document again from Word" in error.message


def test_duplicate_entries_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", b"<x/>")
            archive.writestr("word/document.xml", b"<safe/>")
            archive.writestr("word/document.xml", b"<shadow/>")
    error = _error(buffer.getvalue(), "essay.docx")
    assert error.code == "unsafe_archive"
    assert "duplicated" in error.message


def test_valid_docx_passes(tmp_path: Path) -> None:
    assert validate_upload(make_docx(), filename="essay.docx") == "docx"
