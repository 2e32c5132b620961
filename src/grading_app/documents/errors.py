"""What goes wrong with one uploaded file, and how its name and size read in messages."""

from __future__ import annotations

import unicodedata
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


# Invisible characters that reorder or garble how a name reads: bidirectional marks,
# embeddings, overrides and isolates ("invoice\u202etxt.exe" shows as "invoiceexe.txt")
# are dropped; control characters (C0, C1: tabs, escapes), which garble lists, exports
# and terminals, become spaces; unpaired surrogates are not text at all.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_UNPRINTABLE = frozenset({"Cc", "Cs"})


def clean_filename(filename: str, *, default: str, max_length: int = 255) -> str:
    """The file's own name (browsers may send a whole Windows path), safe to store and
    show: no control or bidirectional characters, at most `max_length` characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ""
        if char in _BIDI_CONTROLS
        else " "
        if unicodedata.category(char) in _UNPRINTABLE
        else char
        for char in name
    ).strip()
    name = name or default
    return name if len(name) <= max_length else name[: max_length - 3] + "..."


def display_name(filename: str) -> str:
    """The file's own name, quoted, for messages; browsers may send a full Windows path."""
    name = clean_filename(filename, default="")
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
