"""A marking scheme file in: read once, bounded, validated, its text extracted and its
rubric read from its tables, then stored under a generated name. All of it before any
transaction opens; the row is written afterwards (DESIGN "One unit of work")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from grading_app.documents.errors import clean_filename
from grading_app.documents.extract import docx_tables, extract_text
from grading_app.documents.storage import store_upload
from grading_app.documents.validate import too_large_error
from grading_app.grading.rubric import Rubric
from grading_app.library.rubric_tables import RubricReading, markdown_tables, read_rubric

NAME_LENGTH = 255  # saved_marking_schemes.name and original_filename


@dataclass(frozen=True)
class SchemeFile:
    """A scheme file read and stored: what its library row is made of."""

    original_filename: str
    stored_filename: str
    file_type: str
    size_bytes: int
    text: str
    rubric: Rubric | None
    content_hash: str
    warnings: tuple[str, ...]

    @property
    def title(self) -> str:
        """The name a scheme uploaded without one gets: its file's, without extension."""
        stem = self.original_filename.rsplit(".", 1)[0].strip()
        return (stem or self.original_filename)[:NAME_LENGTH]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bounded(stream: IO[bytes], *, filename: str, max_bytes: int) -> bytes:
    """At most `max_bytes` of the stream; one byte more is a 400 saying the limit."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large_error(filename, size=len(data), max_bytes=max_bytes)
    return data


def scheme_rubric(data: bytes, *, file_type: str, text: str) -> RubricReading:
    """The rubric in a scheme's tables: a .docx's tables, or Markdown pipe tables in a
    text file. A PDF's tables are not recognisable as such: it stays free text."""
    if file_type == "docx":
        return read_rubric(docx_tables(data))
    if file_type in ("md", "txt"):
        return read_rubric(markdown_tables(text))
    return RubricReading(None)


def read_scheme_file(data: bytes, *, filename: str, upload_dir: Path, max_bytes: int) -> SchemeFile:
    """Raises DocumentError (a 400 with the reason) for a file that cannot be used."""
    document = extract_text(data, filename=filename, max_bytes=max_bytes)
    reading = scheme_rubric(data, file_type=document.file_type, text=document.text)
    stored = store_upload(data, upload_dir=upload_dir, file_type=document.file_type)
    return SchemeFile(
        original_filename=_own_name(filename),
        stored_filename=stored.filename,
        file_type=document.file_type,
        size_bytes=stored.size_bytes,
        text=document.text,
        rubric=reading.rubric,
        content_hash=stored.sha256,
        warnings=document.warnings + reading.warnings,
    )


def _own_name(filename: str) -> str:
    """The name a scheme keeps (documents.errors.clean_filename)."""
    return clean_filename(filename, default="marking scheme", max_length=NAME_LENGTH)
