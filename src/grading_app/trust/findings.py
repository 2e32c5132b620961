"""What the hidden-instruction scan reports: one ``Finding`` per suspicious span."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

# The kinds a finding can have; pages and exports may rely on this vocabulary.
INSTRUCTION = "instruction"  # a sentence telling the grader what to do or what score to give
FAKE_TURN = "fake_turn"  # a chat-format marker posing as another turn ("System:", "[INST]")
HIDDEN_TEXT = "hidden_text"  # text a reader does not see: hidden, white, tiny, off the page
INVISIBLE_CHARACTERS = "invisible_characters"  # zero-width, bidirectional or tag characters
KINDS = (INSTRUCTION, FAKE_TURN, HIDDEN_TEXT, INVISIBLE_CHARACTERS)

EXCERPT_LIMIT = 300


@dataclass(frozen=True)
class Finding:
    """One suspicious span. ``start``/``end`` are offsets into the extracted text when the
    span is part of it (what the model reads), else ``None`` (metadata, comments, ...)."""

    kind: str
    detail: str
    excerpt: str
    location: str
    start: int | None = None
    end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def excerpt_of(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """``text`` capped at ``limit`` characters, with control and format characters (the
    invisible ones) written as escapes so a reader sees that they are there."""
    out: list[str] = []
    for char in text[:limit]:
        if char in "\n\t":
            out.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Co", "Cn"):
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out) + ("…" if len(text) > limit else "")


def where(location: str) -> str:
    """ "in the footer", "on pdf page 2": a location as a sentence says it."""
    return f"on {location}" if location.startswith("pdf page") else f"in the {location}"


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_NEAR = 20_000  # characters after the cursor searched first, before the whole text


def locate(text: str, needle: str, cursor: int = 0) -> tuple[int, int] | None:
    """Where ``needle`` (a piece of a document as its file holds it) sits in the
    extracted ``text``: first at or after ``cursor``, else anywhere. Extraction
    normalises Unicode and line ends, drops control characters and spaces before line
    ends, and may rewrap lines (PDF) or collapse spaces (table cells); those differences
    are allowed for. ``None`` if it is not there."""
    needle = needle.replace("\r\n", "\n").replace("\r", "\n").replace("\v", "\n")
    needle = _CONTROL_CHARS.sub("", unicodedata.normalize("NFC", needle))
    needle = _TRAILING_SPACE.sub("\n", needle).strip()
    if not needle:
        return None
    for start_at in (cursor, 0):
        found = text.find(needle, start_at)
        if found >= 0:
            return found, found + len(needle)
    words = needle[:2000].split()
    flexible = re.compile(r"\s+".join(re.escape(word) for word in words))
    # Near the cursor first: most pieces are looked for in document order.
    for start_at, stop in ((cursor, cursor + len(needle) * 2 + _NEAR), (0, len(text))):
        match = flexible.search(text, start_at, stop)
        if match:
            return match.start(), match.end()
    return None
