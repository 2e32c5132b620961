"""A ZIP of a batch or job: the gradebook CSV, a summary, and one feedback file per
document, written straight into the response.

zipfile writes to a stream it cannot seek by putting each member's sizes after its
data (a data descriptor), so the archive goes out as it is made; only the central
directory (a small record per member) is kept until the end.
"""

from __future__ import annotations

import io
import pickle
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from grading_app.reports.documents import Document, documents
from grading_app.reports.gradebook import Cell, base_name, layout, student_id
from grading_app.reports.scope import Scope
from grading_app.reports.writers import csv_chunks

NAME_CHARACTERS = 100
CHUNK_BYTES = 64 * 1024
# Names Windows refuses for a file, whatever the extension.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])$", re.IGNORECASE)
_NOT_IN_NAMES = re.compile(r'[<>:"/\\|?*]')


class _Sink(io.RawIOBase):
    """Where zipfile writes: collects bytes for the response to take; cannot seek."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0  # bytes not yet taken

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return data


def member_name(filename: str, used: set[str], *, folder: str, suffix: str) -> str:
    """A safe, unique archive path for a document's file: its base name only (no
    folders, no `..`, no absolute path), without control or reserved characters, at
    most 100 characters, numbered when taken ("essay (2).txt")."""
    name = base_name(filename)
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    if stem.isascii() and stem.isprintable():
        cleaned = stem  # the usual name: no control character, nothing to normalise
    else:
        cleaned = "".join(
            "_" if unicodedata.category(ch).startswith("C") else ch
            for ch in unicodedata.normalize("NFC", stem)
        )
    cleaned = _NOT_IN_NAMES.sub("_", cleaned).strip(" .")[:NAME_CHARACTERS].strip(" .")
    if not cleaned:
        cleaned = "document"
    if _RESERVED.match(cleaned):
        cleaned = f"_{cleaned}"
    candidate, number = cleaned, 1
    while candidate.casefold() in used:  # unique on case-insensitive file systems too
        number += 1
        candidate = f"{cleaned} ({number})"
    used.add(candidate.casefold())
    return f"{folder}/{candidate}{suffix}"


def zip_chunks(
    session: Session,
    scope: Scope,
    *,
    summary_json: str,
    id_pattern: re.Pattern[str] | None = None,
) -> Iterator[bytes]:
    """The archive's bytes: gradebook.csv, summary.json, feedback/<document>.txt.

    The documents are read once: while the gradebook goes out, each document's feedback
    file is set aside in a temporary file, and added after the summary."""
    columns = layout(session, scope)
    sink = _Sink()
    with (
        tempfile.TemporaryFile(prefix="grading-feedback-") as feedback,
        zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):

        def rows() -> Iterator[list[Cell]]:
            yield list[Cell](columns.header())
            used: set[str] = set()
            for document in documents(session, scope):
                name = member_name(
                    document.original_filename, used, folder="feedback", suffix=".txt"
                )
                pickle.dump((name, feedback_text(document, id_pattern)), feedback)
                yield columns.row(document, id_pattern)

        # force_zip64: the size is unknown until the end, and may pass 2 GiB.
        with archive.open("gradebook.csv", "w", force_zip64=True) as member:
            for chunk in csv_chunks(rows()):
                member.write(chunk.encode("utf-8"))
                yield sink.take()
        archive.writestr("summary.json", summary_json)
        yield sink.take()
        feedback.seek(0)
        while True:
            try:  # our own file, written above
                name, text = pickle.load(feedback)  # noqa: S301
            except EOFError:
                break
            archive.writestr(name, text)
            if sink.size >= CHUNK_BYTES:  # a chunk per file would be 100,000 sends
                yield sink.take()
    yield sink.take()


def feedback_text(document: Document, pattern: re.Pattern[str] | None) -> str:
    """What a student (or their teacher) reads: each model's grade and feedback."""
    lines = [
        f"Document: {document.original_filename}",
        f"Student: {student_id(document.original_filename, pattern)}",
        f"Job: {document.job_name}",
        f"Status: {document.status or 'unknown'}",
    ]
    if document.error:
        lines.append(f"Error: {document.error}")
    for label, grade in document.grades.items():
        lines += ["", f"== {label} =="]
        if grade.score is not None:
            lines.append(f"Score: {grade.score:g} / {grade.max_score or 0:g}")
        for criterion in grade.criteria or []:
            if not isinstance(criterion, dict):
                continue
            line = f"- {criterion.get('name')}: {criterion.get('score')}"
            if criterion.get("max_score") is not None:
                line += f" / {criterion.get('max_score')}"
            if criterion.get("justification"):
                line += f" ({criterion['justification']})"
            lines.append(line)
        if grade.feedback:
            lines += ["", grade.feedback]
    return "\n".join(lines) + "\n"
