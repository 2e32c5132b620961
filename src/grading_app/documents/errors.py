"""What goes wrong with one uploaded file, and how its name and size read in messages."""

from __future__ import annotations

from typing import Literal

from grading_app.errors import BadRequest

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


class DocumentError(BadRequest):
    """One uploaded file cannot be used; ``code`` says why for machines, ``message`` for people."""

    def __init__(self, code: DocumentErrorCode, message: str, *, filename: str = "") -> None:
        super().__init__(message)
        self.code: DocumentErrorCode = code
        self.filename = filename


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
