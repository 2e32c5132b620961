"""Characters that do not show: zero-width, bidirectional controls and Unicode tags.

Zero-width joiners and non-joiners are part of ordinary writing in many scripts
(Persian, Hindi, emoji sequences), so one between two letters of a script other than
Latin, or inside an emoji sequence, is left alone. Unicode tag characters (U+E0000 to
U+E007F) spell ASCII invisibly; what they spell is decoded for the teacher.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from grading_app.trust.findings import INVISIBLE_CHARACTERS, Finding, excerpt_of, where

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_JOINERS = "\u200c\u200d"
INVISIBLE = re.compile(f"[{_ZERO_WIDTH}{_BIDI}\U000e0000-\U000e007f]")
_TAG_BASE = 0xE0000
# Occurrences closer than this are one finding, so a word laced with them is one span.
_CLUSTER_GAP = 40
_MAX_FINDINGS = 20


def invisible_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each run of invisible characters that is not ordinary writing."""
    spans: list[tuple[int, int]] = []
    for match in INVISIBLE.finditer(text):
        index = match.start()
        if _is_ordinary(text, index):
            continue
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    return spans


def invisible_findings(
    text: str, location_of: Callable[[int], str], *, in_text: bool
) -> list[Finding]:
    """Findings for the invisible characters of ``text``; ``location_of`` names where
    an offset lies; offsets are reported only when ``text`` is the extracted text
    itself (``in_text``)."""
    clusters: list[tuple[int, int, int]] = []  # start, end, number of characters
    for start, end in invisible_spans(text):
        if clusters and start - clusters[-1][1] <= _CLUSTER_GAP:
            first, _, count = clusters[-1]
            clusters[-1] = (first, end, count + end - start)
        else:
            clusters.append((start, end, end - start))
    findings = []
    for start, end, count in clusters[:_MAX_FINDINGS]:
        span = text[start:end]
        location = location_of(start)
        findings.append(
            Finding(
                kind=INVISIBLE_CHARACTERS,
                detail=_describe(span, count, location),
                excerpt=excerpt_of(span),
                location=location,
                start=start if in_text else None,
                end=end if in_text else None,
            )
        )
    if len(clusters) > _MAX_FINDINGS:
        rest = sum(count for _, _, count in clusters[_MAX_FINDINGS:])
        location = location_of(clusters[_MAX_FINDINGS][0])
        findings.append(
            Finding(
                kind=INVISIBLE_CHARACTERS,
                detail=f"{rest} more invisible characters further on, from the {location}.",
                excerpt="",
                location=location,
            )
        )
    return findings


def remove_invisible(text: str) -> str:
    spans = invisible_spans(text)
    if not spans:
        return text
    pieces, cursor = [], 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _describe(span: str, count: int, location: str) -> str:
    hidden = [char for char in span if INVISIBLE.fullmatch(char)]
    tags = "".join(chr(ord(char) - _TAG_BASE) for char in hidden if ord(char) >= _TAG_BASE)
    names = sorted({_name(char) for char in hidden})
    what = f"{count} invisible character{'s' if count != 1 else ''} ({', '.join(names)})"
    if tags.strip():
        return f"{what} {where(location)}, spelling a hidden message: {excerpt_of(tags, 200)!r}."
    return f"{what} {where(location)}; such characters can hide or reorder text for a reader."


def _name(char: str) -> str:
    if ord(char) >= _TAG_BASE:
        return "Unicode tag characters"
    if char in _BIDI:
        return "bidirectional control"
    return unicodedata.name(char, f"U+{ord(char):04X}").lower()


def _is_ordinary(text: str, index: int) -> bool:
    """A joiner between two non-Latin letters or in an emoji sequence; a byte-order mark
    opening the text."""
    char = text[index]
    if char == "\ufeff":
        return index == 0
    if char not in _JOINERS or index == 0 or index + 1 >= len(text):
        return False
    before, after = text[index - 1], text[index + 1]
    if unicodedata.category(before) == "So" or unicodedata.category(after) == "So":
        return True
    return _non_latin_letter(before) and _non_latin_letter(after)


def _non_latin_letter(char: str) -> bool:
    # Combining marks (Indic vowel signs, viramas) sit next to joiners too.
    return ord(char) > 0x24F and unicodedata.category(char)[0] in "LM"
