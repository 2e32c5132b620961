"""Text extraction from real .docx, .pdf, .txt and .md files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from grading_app.documents.extract import (
    PAGE_SEPARATOR,
    count_words,
    extract_file,
    extract_text,
)
from grading_app.documents.validate import DocumentError
from tests.documents.factories import (
    encrypt_pdf,
    make_docx,
    make_image_pdf,
    make_pdf,
)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _error(data: bytes, filename: str) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        extract_text(data, filename=filename)
    return caught.value


# --- .docx ---


def test_docx_paragraphs_table_header_footer_and_unicode() -> None:
    result = extract_text(make_docx(), filename="essay.docx")
    assert result.file_type == "docx"
    assert result.page_count is None
    assert result.warnings == ()
    assert result.text == (
        "Student: Ada Lovelace\n\n"
        "The thesis of this essay is simple.\n"
        "Naïve café — ünïcödé ✓\n"
        "Criterion | Score\n"
        "Argument | 8/10\n\n"
        "Page footer text"
    )
    # Words hold a letter or digit: the table's "|", the dash and the tick do not count.
    assert result.word_count == 20


def test_docx_footnotes_and_endnotes_are_read_without_separators() -> None:
    data = make_docx(footnotes=["Smith (2020), p. 4.", "See appendix."], endnotes=["Ibid."])
    text = extract_text(data, filename="essay.docx").text
    assert text.endswith(
        "Footnotes:\n[1] Smith (2020), p. 4.\n[2] See appendix.\n\nEndnotes:\n[1] Ibid."
    )


def test_docx_tracked_changes_content_controls_and_text_boxes() -> None:
    body = [
        # A cover-page content control: python-docx's body iteration skips these.
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>Cover title</w:t></w:r></w:p></w:sdtContent></w:sdt>",
        # A tracked insertion and deletion in one paragraph.
        '<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r>'
        '<w:ins w:id="1" w:author="T"><w:r><w:t>inserted</w:t></w:r></w:ins>'
        '<w:del w:id="2" w:author="T"><w:r><w:delText>deleted</w:delText></w:r></w:del></w:p>',
        # Field code text must not leak; the field result must.
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        "<w:r><w:instrText> PAGE </w:instrText></w:r>"
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>7</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>',
    ]
    result = extract_text(
        make_docx(header=None, footer=None, table=None, body_xml=body), filename="e.docx"
    )
    lines = result.text.splitlines()
    assert lines[-3:] == ["Cover title", "Kept inserted", "7"]
    assert "deleted" not in result.text
    assert "PAGE" not in result.text
    assert any("tracked changes" in warning for warning in result.warnings)


def test_docx_renamed_pdf_is_read_as_docx_with_a_warning() -> None:
    result = extract_text(make_docx(), filename="essay.pdf")
    assert result.file_type == "docx"
    assert "The thesis of this essay is simple." in result.text
    assert result.warnings == (
        '"essay.pdf" is named .pdf but its content is a Word document; '
        "it was read as a Word document.",
    )


def test_docx_with_only_an_image_has_no_text() -> None:
    error = _error(make_docx(image_only=True, header=None, footer=None), "essay.docx")
    assert error.code == "no_text"
    assert "contains no text" in error.message


# --- .pdf ---


def test_pdf_pages_keep_their_boundaries() -> None:
    result = extract_text(
        make_pdf(["First page: the introduction.", "Second page: café."]), filename="e.pdf"
    )
    assert result.file_type == "pdf"
    assert result.page_count == 2
    assert result.text.split("\f") == [
        "First page: the introduction.\n",
        "\nSecond page: café.",
    ]
    assert result.text == "First page: the introduction." + PAGE_SEPARATOR + "Second page: café."
    assert result.word_count == 7
    assert result.warnings == ()


def test_pdf_blank_pages_are_reported() -> None:
    result = extract_text(make_pdf(["Some text.", "", "More text."]), filename="e.pdf")
    assert result.page_count == 3
    assert result.text.count("\f") == 2
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("Page(s) 2 have no extractable text")


def test_image_only_pdf_asks_for_ocr() -> None:
    error = _error(make_image_pdf(), "scan.pdf")
    assert error.code == "no_text"
    assert "no extractable text; is it a scanned image? OCR it first" in error.message


def test_encrypted_pdf_is_refused_before_extraction() -> None:
    error = _error(encrypt_pdf(make_pdf(), user_password="secret"), "essay.pdf")
    assert error.code == "encrypted_pdf"


def test_pdf_with_only_an_owner_password_is_read() -> None:
    data = encrypt_pdf(make_pdf(["Permissions only."]), user_password="", owner_password="o")
    assert extract_text(data, filename="essay.pdf").text == "Permissions only."


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256"])
def test_aes_pdf_with_only_an_owner_password_is_read(algorithm) -> None:
    """What Acrobat and Word write when printing or copying is restricted: AES with an
    empty user password. pypdf decrypts AES with `cryptography`, a dependency."""
    essay = make_pdf(["Permissions only, in AES."])
    data = encrypt_pdf(essay, user_password="", owner_password="owner", algorithm=algorithm)
    assert b"/AESV" in data  # really AES, not pypdf's default RC4
    assert extract_text(data, filename="essay.pdf").text == "Permissions only, in AES."


def test_aes_256_pdf_with_a_user_password_is_refused() -> None:
    data = encrypt_pdf(make_pdf(), user_password="secret", algorithm="AES-256")
    assert _error(data, "essay.pdf").code == "encrypted_pdf"


# --- .txt and .md ---


def test_utf8_with_bom() -> None:
    data = "\ufeffNaïve café.\r\nSecond line.\r\n".encode()
    result = extract_text(data, filename="essay.txt")
    assert result.file_type == "txt"
    assert result.text == "Naïve café.\nSecond line."
    assert result.warnings == ()


def test_cp1252_text_is_decoded_with_a_warning() -> None:
    data = "“Smart quotes” – café costs €5.".encode("cp1252")
    result = extract_text(data, filename="essay.txt")
    assert result.text == "“Smart quotes” – café costs €5."
    assert result.warnings == (
        '"essay.txt" is not UTF-8; it was read as Windows-1252. If some characters look '
        "wrong, save it as UTF-8 and upload it again.",
    )


def test_markdown_keeps_its_markup() -> None:
    data = b"# Essay\n\n\n\n\nSome *emphasis*   \n- a point\n"
    result = extract_text(data, filename="essay.md")
    assert result.file_type == "md"
    assert result.text == "# Essay\n\nSome *emphasis*\n- a point"
    assert result.word_count == 5  # Essay, Some, *emphasis*, a, point


def test_whitespace_only_text_has_no_text() -> None:
    error = _error(b" \n\t\r\n ", "essay.txt")
    assert error.code == "no_text"
    assert "only blank space" in error.message


def test_extract_text_validates_first() -> None:
    assert _error(b"", "essay.docx").code == "empty"
    data = make_pdf()
    assert _error(data[: len(data) - 40], "essay.pdf").code == "corrupt"


# --- files on disk ---


def test_extract_file_reads_a_docx(tmp_path: Path) -> None:
    path = tmp_path / "scheme.docx"
    path.write_bytes(make_docx(paragraphs=["Marking scheme: 10 points for structure."]))
    result = extract_file(path)
    assert "Marking scheme: 10 points for structure." in result.text


def test_extract_file_checks_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:
        handle.truncate(4 * 1024**3)  # sparse: 4 GB on stat, nothing on disk
    with pytest.raises(DocumentError) as caught:
        extract_file(path)
    assert caught.value.code == "too_large"
    assert "4096 MB" in caught.value.message
    assert os.path.getsize(path) == 4 * 1024**3


def test_extract_file_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "essay.txt"
    path.write_text("word " * 100)
    with pytest.raises(DocumentError) as caught:
        extract_file(path, max_bytes=100)
    assert caught.value.code == "too_large"


def _words_by_definition(text: str) -> int:
    return sum(1 for token in text.split() if any(char.isalnum() for char in token))


def test_word_count_matches_its_definition_on_any_text() -> None:
    """Whitespace-separated tokens holding a letter or digit; counted in one pass over
    slices of the text, the same as token by token."""
    generator = random.Random(9)
    pieces = ["a", "Z", "9", "é", "論", "_", "-", "|", "—", "=", ".", " ", "\t", "\n"]
    pieces += ["\u00a0", "\u2003", "\u3000", "__", "--", "x1", "(", ")"]
    for _ in range(2000):
        text = "".join(generator.choice(pieces) for _ in range(generator.randint(0, 40)))
        assert count_words(text) == _words_by_definition(text), repr(text)


def test_word_count_across_slices_and_long_tokens() -> None:
    # Tokens that straddle where a slice would end are counted once, whole.
    text = ("word " * 300_000)[:-1] + "tail"
    assert count_words(text) == _words_by_definition(text) == 300_000
    assert count_words("=" * 3_000_000) == 0  # one long rule, no word
    assert count_words("=" * 3_000_000 + "x") == 1
    assert count_words("x" * 3_000_000 + " |") == 1
